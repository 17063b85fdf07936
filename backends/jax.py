"""JAX adapter: under `keras.distribution.DataParallel` (GSPMD) batch sums are already global.

With GSPMD the loss sees globally sharded arrays, so `ops.sum` over the batch axis is the
global sum and XLA inserts the collectives itself: the reductions here are the identity.
"""

import contextlib
import os
import warnings

from swav_keras.backends import (
    ONE_DEVICE,
    Distribution,
    assign_one_replica_values,
    check_distribution_name,
    one_replica_values,
    unchanged,
)


def all_reduce_sum(x):
    """The identity: GSPMD already makes batch sums global."""
    return x


def differentiable_all_reduce_sum(x):
    """The identity: GSPMD already makes batch sums global, gradients included."""
    return x


def all_reduce_max(x):
    """The identity: GSPMD already makes batch maxima global."""
    return x


def synchronize_gradients(variables):
    """Nothing to do: under GSPMD the gradients of the global loss are already global."""
    del variables


def replica_local_variable_kwargs():
    """None needed: under GSPMD the program, and its state, are global."""
    return {}


# One value per variable: under GSPMD a variable holds one global value.
replica_values = one_replica_values
assign_replica_values = assign_one_replica_values


# No per-replica values and no step-log change here (Keras's TF trainer alone needs them).
first_replica_value = unchanged
step_log_value = unchanged


def in_strategy_scope():
    """`False`: `tf.distribute` strategies are TensorFlow's."""
    return False


@contextlib.contextmanager
def process_local(*layers):
    """Layers whose variables live on this process alone, with no distribution set inside.

    On several processes (multi-host) each variable spans them all, so any computation on it,
    or any new variable made under the distribution, is a program that every process must
    run. Work that one process does alone (saving the encoder, pictures, evaluation) gets
    copies instead: the variables are fully replicated, so this process holds their values.
    On one process: the layers themselves.
    """
    import jax
    import keras

    if jax.process_count() == 1:
        yield layers
        return
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield tuple(_local_copy(layer) for layer in layers)
    finally:
        keras.distribution.set_distribution(distribution)


def _local_copy(layer):
    import keras

    weights = layer.get_weights()  # NumPy: fully replicated, so held by this process
    if isinstance(layer, keras.Model):
        copy = keras.models.clone_model(layer)  # encoders
    else:
        copy = layer.__class__.from_config(layer.get_config())
        copy.build_from_config(layer.get_build_config())
    copy.set_weights(weights)
    return copy


def prefers_im2col_conv():
    """True on CPU: XLA's CPU convolution gradients are slow for small-image ResNets.

    In a whole SwAV step of the small ResNet on a CPU, `Im2colConv2D` gives JAX more images
    per second (`benchmarks/RESULTS.md`); GPUs and TPUs keep their convolutions.
    """
    import jax

    return jax.default_backend() == "cpu"


def native_ops():
    """None: Keras's own convolution and BatchNorm are kept on this backend (the torch
    adapter's fused kernels have no counterpart to gain from here), so `NativeConv2D` and
    `NativeBatchNormalization` compute as their Keras parents."""
    return None


def num_replicas():
    """One logical replica: the program is written for the global batch."""
    return 1


def replica_index():
    """0: one logical replica (see `num_replicas`).

    A `DataParallel` step computes global arrays, so one random draw covers the whole batch;
    the processes of a multi-process run seed their layers apart themselves.
    """
    return 0


def gradient_scale():
    """Gradients of the global loss are already global: no scaling."""
    return 1.0


def start_distribution(name="auto", tpu=""):
    """Sets `keras.distribution.DataParallel` over every device and returns its `Distribution`.

    `"data_parallel"`: the global batch is sharded over all devices (GPUs, TPU cores, or host
    devices made with `XLA_FLAGS=--xla_force_host_platform_device_count=N`); on several hosts,
    set `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (or run on a Cloud
    TPU VM, where `jax.distributed.initialize()` finds them) and start the same command on each
    host. `"auto"` picks `data_parallel` when there is more than one device. `tpu` is unused
    (JAX finds attached TPUs itself).
    """
    del tpu
    check_distribution_name(name, "jax")
    import jax
    import keras

    if name == "none":
        return ONE_DEVICE
    # Before anything asks JAX for its devices (which would start a one-process backend).
    if os.environ.get("JAX_COORDINATOR_ADDRESS") and not jax.distributed.is_initialized():
        count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
        jax.distributed.initialize(  # None: found by JAX on Cloud TPU VMs, SLURM, Open MPI
            os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(count) if count else None,
            process_id=int(index) if index else None,
            # After training, process 0 alone saves, draws and (recipes/main.py) evaluates
            # while the others wait at exit; one that dies is still found by the heartbeat.
            shutdown_timeout_seconds=24 * 3600,
        )
    devices = jax.devices()
    if name == "auto" and len(devices) == 1:
        return ONE_DEVICE
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Distribution("data_parallel", contextlib.nullcontext, len(devices), jax.process_index(),
                        jax.process_count(), False)


def enable_determinism():
    """XLA's deterministic GPU kernels (`--xla_gpu_deterministic_ops`; CPU kernels are
    deterministic already), read when JAX starts its GPU backend."""
    import jax
    from jax._src import xla_bridge  # no public way to ask whether JAX has started

    flag = "--xla_gpu_deterministic_ops=true"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag in flags:
        return
    if xla_bridge.backends_are_initialized() and jax.default_backend() != "cpu":
        warnings.warn(
            "JAX has started on an accelerator: XLA_FLAGS are read at start, so its kernels "
            "stay as they were. Call `swav_keras.enable_determinism()` at the start of the "
            f"program, or set XLA_FLAGS='{flag}', for equal runs.",
            stacklevel=3,
        )
        return
    os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
