"""TensorFlow adapter: global sums through the `tf.distribute` replica context.

Inside a `tf.distribute` strategy's replica function (what `model.fit` runs under
`MirroredStrategy`, `MultiWorkerMirroredStrategy` or `TPUStrategy`), sums and maxima are
all-reduced across replicas; outside one (the default strategy) they are the identity.
"""

import os
import warnings

import tensorflow as tf

from swav_keras.backends import (
    ONE_DEVICE,
    Distribution,
    check_distribution_name,
    layers_unchanged,
)


def _replica_context():
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _sum_over_replicas(x):
    context = _replica_context()
    if context is None:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def all_reduce_sum(x):
    """Sums `x` over all replicas in sync; the identity on one replica."""
    return _sum_over_replicas(x)


def differentiable_all_reduce_sum(x):
    """`all_reduce_sum` that gradients flow through (the gradient is all-reduced too).

    `ReplicaContext.all_reduce` is differentiable: under `MirroredStrategy` and `TPUStrategy`
    its gradient is the all-reduce of the incoming gradients.
    """
    return _sum_over_replicas(x)


def all_reduce_max(x):
    """Element-wise maximum of `x` over all replicas in sync; the identity on one replica.

    `ReplicaContext.all_reduce` knows only SUM and MEAN, so the values are gathered (one row
    per replica) and reduced locally.
    """
    context = _replica_context()
    if context is None:
        return x
    gathered = context.all_gather(tf.expand_dims(x, 0), axis=0)
    return tf.reduce_max(gathered, axis=0)


def synchronize_gradients(variables):
    """Nothing to do: Keras's TF trainer sums gradients over replicas (see `gradient_scale`)."""
    del variables


def replica_local_variable_kwargs():
    """`keras.Variable` arguments for state each replica keeps for itself (the feature queue).

    Under a strategy of several replicas: `synchronization="on_read"` with
    `aggregation="only_first_replica"` (a mirrored variable would be overwritten with one
    replica's value, or refuse per-replica assignments). On one replica: nothing special.
    """
    if num_replicas() == 1:
        return {}
    return {"synchronization": "on_read", "aggregation": "only_first_replica"}


def replica_values(variable):
    """This process's replicas' values of `variable`, as NumPy arrays, first replica first.

    A replica-local variable (`replica_local_variable_kwargs`) holds one value per replica, and
    reading it, as `save_weights` does, gives the first replica's only: the feature queue saves
    every replica's share through this. Any other variable gives one value.
    """
    value = getattr(variable, "value", variable)
    if isinstance(value, tf.distribute.DistributedValues):
        return [component.numpy() for component in value.values]
    return [value.numpy()]


def assign_replica_values(variable, values):
    """Assigns `values[r]` to replica `r`'s copy of `variable` (the inverse of `replica_values`)."""
    value = getattr(variable, "value", variable)
    components = value.values if isinstance(value, tf.distribute.DistributedValues) else [value]
    if len(values) != len(components):
        raise ValueError(
            f"`values` must hold one value per replica ({len(components)}); received "
            f"{len(values)}."
        )
    for component, item in zip(components, values):
        component.assign(item)


def first_replica_value(x):
    """This process's first replica's part of a per-replica value; anything else unchanged."""
    if isinstance(x, tf.distribute.DistributedValues):
        return x.values[0]
    return x


def in_strategy_scope():
    """Whether a `tf.distribute` strategy (not the default one) is in scope."""
    return tf.distribute.has_strategy()


def step_log_value(x):
    """A metric result as a training step returns it: shape `[1]` inside a replica of
    `MultiWorkerMirroredStrategy` (Keras reduces step logs there along axis 0), else `x`."""
    strategy = tf.distribute.get_strategy()
    if (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
        and _replica_context() is not None
    ):
        return tf.reshape(x, [1])
    return x


# Every variable lives in this process (each worker holds its own copy under multi_worker).
process_local = layers_unchanged


def prefers_im2col_conv():
    """False: oneDNN's (and cuDNN's) convolutions are faster in a whole step."""
    return False


def native_ops():
    """None: Keras's own convolution and BatchNorm are kept on this backend (the torch
    adapter's fused kernels have no counterpart to gain from here), so `NativeConv2D` and
    `NativeBatchNormalization` compute as their Keras parents."""
    return None


def num_replicas():
    """Number of replicas that share the global batch."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_index():
    """This replica's index among the replicas in sync (0 outside a replica function).

    Inside `strategy.run` (what `model.fit` runs under a strategy) the replicas of one
    process hold identical copies of every variable, a `SeedGenerator`'s state included:
    random layers add this index to their seeds so that replicas draw different numbers.
    """
    context = _replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


def gradient_scale():
    """Keras's TF trainer sums gradients across replicas: scale each replica's loss by 1/R."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 1.0
    return 1.0 / context.num_replicas_in_sync


def start_distribution(name="auto", tpu=""):
    """Creates the `tf.distribute` strategy `name` and returns its `Distribution`.

    `"mirrored"`: every GPU of this machine (`MirroredStrategy`). `"multi_worker"`: several
    machines described by the `TF_CONFIG` environment variable
    (`MultiWorkerMirroredStrategy`). `"tpu"`: a TPU resolved by `TPUClusterResolver(tpu)`
    (`tpu=""` finds a Colab or Cloud TPU VM's own, or give its name or `grpc://` address).
    `"auto"` picks `tpu` when a TPU is named (`tpu` or `TPU_NAME`) or attached, `multi_worker`
    when `TF_CONFIG` is set, `mirrored` with several GPUs, `none` otherwise. Keras splits each
    global batch over the replicas itself.
    """
    check_distribution_name(name, "tensorflow")
    if name == "auto":
        if tpu or os.environ.get("TPU_NAME") or _tpu_attached():
            name = "tpu"
        elif os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            return ONE_DEVICE
    if name == "none":
        return ONE_DEVICE
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu or None)
        except (ValueError, OSError) as error:  # no TPU named nor found; unknown name
            raise ValueError(
                f"distribution='tpu' found no TPU (TPUClusterResolver(tpu={tpu!r}) said: "
                f"{error}). On Colab choose a TPU runtime; on a Cloud TPU VM run on the VM "
                "itself; elsewhere give the TPU's name or grpc:// address with --tpu. "
                "Without a TPU use --distribution=auto."
            ) from error
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    index, count = 0, 1
    resolver = strategy.cluster_resolver
    if name == "multi_worker" and resolver is not None:
        index = int(resolver.task_id or 0)
        jobs = resolver.cluster_spec().as_dict()
        count = len(jobs.get("chief", [])) + len(jobs.get("worker", []))
        if "chief" in jobs and resolver.task_type == "worker":
            index += 1  # the chief is process 0
    return Distribution(name, strategy.scope, strategy.num_replicas_in_sync, index, count,
                        False)


def _tpu_attached():
    return bool(os.environ.get("COLAB_TPU_ADDR")) or os.path.exists("/dev/accel0")


def enable_determinism():
    """TensorFlow's op determinism, and one inter-op thread.

    Op determinism alone still left 2e-6 between two CPU runs of 8 SwAV steps: independent
    ops run concurrently on the inter-op pool and their float32 updates land in either order.
    The thread count is fixed when TensorFlow starts: a later call warns that it is too late.
    """
    tf.config.experimental.enable_op_determinism()
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        warnings.warn(
            "TensorFlow has started: its ops are now deterministic, but concurrent ops may "
            "still round differently from run to run. Call `swav_keras.enable_determinism()` "
            "at the start of the program (or set TF_NUM_INTEROP_THREADS=1) for equal runs.",
            stacklevel=3,
        )
