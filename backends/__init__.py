"""Per-backend adapters: the few things `keras.ops` cannot express portably.

Each of `tensorflow.py`, `jax.py` and `torch.py` defines the same functions:

- `all_reduce_sum(x)`: the sum of `x` over all replicas (identity on one device).
- `differentiable_all_reduce_sum(x)`: the same sum with gradients flowing through it (the
  gradient is all-reduced too), for synchronised BatchNorm.
- `all_reduce_max(x)`: the element-wise maximum of `x` over all replicas.
- `synchronize_gradients(variables)`: makes the backend average these variables' gradients
  over replicas where Keras does not (torch.distributed); a no-op elsewhere.
- `start_distribution(name, tpu="")`: sets up the backend's distributed engine by name
  (`"auto"`, `"none"` or one of the backend's own, see `DISTRIBUTIONS`) and returns a
  `Distribution`.
- `replica_local_variable_kwargs()`: `keras.Variable` arguments for state that each replica
  keeps for itself (the feature queue).
- `replica_values(variable)` / `assign_replica_values(variable, values)`: every local
  replica's value of such a variable as NumPy arrays, and back (checkpoints of the queue).
- `first_replica_value(x)` / `step_log_value(x)`: work around Keras 3.15's TensorFlow trainer
  under `MultiWorkerMirroredStrategy` (see `SwAV`); `x` itself elsewhere.
- `process_local(*layers)`: a context manager giving layers whose variables live on this
  process alone, for work that only one process does (saving the encoder, pictures, evaluation):
  the layers themselves, except on multi-host JAX, where it gives copies and unsets the
  distribution inside.
- `prefers_im2col_conv()`: whether stride-1 convolutions run faster as `Im2colConv2D` on the
  device in use (JAX on CPU).
- `native_ops()`: the backend's own fused convolution and BatchNorm kernels on channels-last
  tensors where they beat Keras's generic ops (PyTorch), or `None` (TensorFlow, JAX): what
  `NativeConv2D` and `NativeBatchNormalization` call, with `LARS`'s foreach update and
  `SkipNonFiniteOptimizer`'s one-kernel finite check.
- `in_strategy_scope()`: whether code runs under a `tf.distribute` strategy (where Keras's
  own cross-replica branches must be kept); `False` on JAX and PyTorch.
- `num_replicas()`: how many replicas share the global batch (1 on one device).
- `replica_index()`: this replica's index where the replicas of one process hold identical
  copies of the variables (`tf.distribute`), for per-replica random draws; 0 elsewhere.
- `enable_determinism()`: makes this backend's kernels reproducible run to run (same
  inputs, same results), at some speed cost; call it before the first computation.
- `gradient_scale()`: the factor the loss is multiplied by so that the backend's own
  cross-replica gradient reduction yields the gradient of the global-batch loss.

The core never imports tensorflow, jax or torch: it calls `active()` and uses what it returns.
Installed as `swav_keras.backends` (see `pyproject.toml`).
"""

import collections
import contextlib
import importlib

import keras

_ADAPTERS = {}
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


# What each backend's `start_distribution` accepts besides "auto" and "none".
DISTRIBUTIONS = {
    "tensorflow": ("mirrored", "multi_worker", "tpu"),
    "jax": ("data_parallel",),
    "torch": ("torch",),
}

Distribution = collections.namedtuple(
    "Distribution", ["name", "scope", "num_replicas", "process_index", "process_count",
                     "shards_input"],
)
Distribution.__doc__ = """How training is spread, as `start_distribution` set it up.

Fields:
    name: the distribution in use (`"none"` on one device).
    scope: a callable returning the context to build and compile the model in.
    num_replicas: replicas sharing the global batch.
    process_index: this process's index (0 writes the files).
    process_count: processes taking part.
    shards_input: `True` when each process must feed only its share of every global batch
        (torch.distributed); `False` when Keras splits the global batch itself.
"""

ONE_DEVICE = Distribution("none", contextlib.nullcontext, 1, 0, 1, False)


def check_distribution_name(name, backend):
    """Raises a `ValueError` naming the choices when `name` is unknown for `backend`."""
    choices = ("auto", "none") + DISTRIBUTIONS[backend]
    if name not in choices:
        raise ValueError(
            f"`distribution` must be one of {list(choices)} with the {backend} backend; "
            f"received distribution={name!r}."
        )


def one_replica_values(variable):
    """`replica_values` where a variable holds one value (one device, GSPMD, one process)."""
    return [keras.ops.convert_to_numpy(variable)]


def assign_one_replica_values(variable, values):
    """`assign_replica_values` where a variable holds one value: assigns `values[0]`."""
    if len(values) != 1:
        raise ValueError(f"`values` must hold one value per replica (1); received {len(values)}.")
    variable.assign(values[0])


@contextlib.contextmanager
def layers_unchanged(*layers):
    """`process_local` where every variable already lives on this process: the layers."""
    yield layers


def unchanged(x):
    """`x` itself: `first_replica_value` and `step_log_value` where nothing needs changing."""
    return x


def active():
    """Returns the adapter module of the active Keras backend.

    The module is imported on first use and cached, so the choice is made once per backend.

    Returns:
        The module `swav_keras.backends.<backend>`.

    Raises:
        ValueError: when the active Keras backend has no adapter (e.g. `numpy`, `openvino`).
    """
    name = keras.backend.backend()
    if name not in _ADAPTERS:
        if name not in _MODULES:
            raise ValueError(
                f"swav-keras trains with the tensorflow, jax or torch backend; the active Keras "
                f"backend is {name!r}. Set KERAS_BACKEND to one of {sorted(_MODULES)}."
            )
        _ADAPTERS[name] = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return _ADAPTERS[name]
