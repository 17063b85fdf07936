"""TensorFlow adapter: global sums through the `tf.distribute` replica context.

Inside a `tf.distribute` strategy's replica function (what `model.fit` runs under
`MirroredStrategy`, `MultiWorkerMirroredStrategy` or `TPUStrategy`), sums and maxima are
all-reduced across replicas; outside one (the default strategy) they are the identity.
"""

import tensorflow as tf


def _replica_context():
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def all_reduce_sum(x):
    """Sums `x` over all replicas in sync; the identity on one replica."""
    context = _replica_context()
    if context is None:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def differentiable_all_reduce_sum(x):
    """`all_reduce_sum` that gradients flow through (the gradient is all-reduced too).

    `ReplicaContext.all_reduce` is differentiable: under `MirroredStrategy` and `TPUStrategy`
    its gradient is the all-reduce of the incoming gradients.
    """
    return all_reduce_sum(x)


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


def num_replicas():
    """Number of replicas that share the global batch."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def gradient_scale():
    """Keras's TF trainer sums gradients across replicas: scale each replica's loss by 1/R."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 1.0
    return 1.0 / context.num_replicas_in_sync
