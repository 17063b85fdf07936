"""BatchNormalization with statistics over the global batch, on every backend."""

import functools

import keras
from keras import ops

from swav_keras import backends


@keras.saving.register_keras_serializable(package="swav_keras")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose batch statistics span all replicas.

    When a global batch is split over replicas (several GPUs or TPU cores, or several
    processes), plain BatchNorm normalises each replica's share with its own mean and
    variance. The original SwAV trains with synchronised BatchNorm (PyTorch's `SyncBatchNorm`)
    so that statistics, hence outputs and gradients, are those of the global batch. This layer
    does the same on each backend through the active adapter of `swav_keras.backends`: the
    per-channel sum, sum of squared deviations and count are all-reduced (two reductions of
    `2C + 1` numbers) with an all-reduce that gradients flow through. On one device, and under
    JAX's GSPMD where batch sums are already global, it equals `BatchNormalization`.

    Keras's own `BatchNormalization(synchronized=True)` exists on TensorFlow only and a model
    saved with it does not load under JAX or PyTorch; this layer runs on all three. Its config
    is BatchNormalization's: `to_batch_normalization` turns a model's copies back into plain
    BatchNorm for export, so a saved encoder loads without this package.

    Args:
        **kwargs: `keras.layers.BatchNormalization` arguments (`axis`, `momentum`, `epsilon`,
            `center`, `scale`, initializers...); `synchronized=True` and `renorm=True` are not
            supported. Defaults to BatchNormalization's.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import SyncBatchNormalization
    >>> layer = SyncBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> tuple(layer(np.ones((4, 3), "float32"), training=True).shape)
    (4, 3)

    Reference:
        Ioffe and Szegedy, "Batch Normalization", ICML 2015; Caron et al., "Unsupervised
        Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020.
    """

    def __init__(self, **kwargs):
        if kwargs.pop("synchronized", False):
            raise ValueError(
                "SyncBatchNormalization is synchronised already; it does not take "
                "`synchronized=True` (Keras's TensorFlow-only mode); received synchronized=True."
            )
        if kwargs.get("renorm"):
            raise ValueError(
                "SyncBatchNormalization does not support batch renormalisation; received "
                f"renorm={kwargs['renorm']!r}."
            )
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        return global_moments(self, inputs, mask)


def global_moments(layer, inputs, mask=None):
    """Mean and (biased) variance of `inputs` over `layer`'s axes and over every replica.

    The per-channel sum and count, then the sum of squared deviations, are all-reduced by
    the active adapter (two reductions of `2C + 1` numbers) with an all-reduce that gradients
    flow through: the statistics, hence outputs and gradients, of the global batch.
    """
    if mask is not None:
        raise ValueError(
            f"Synchronised BatchNorm does not support masks; layer {layer.name!r} received a "
            f"mask of shape {tuple(mask.shape)}."
        )
    all_reduce_sum = backends.active().differentiable_all_reduce_sum
    axes = layer._reduction_axes
    inputs = ops.cast(inputs, "float32")
    sums = ops.sum(inputs, axis=axes)
    count = ops.cast(ops.size(inputs), "float32") / ops.cast(ops.size(sums), "float32")
    total = all_reduce_sum(ops.concatenate([sums, ops.reshape(count, (1,))], axis=0))
    global_count = total[-1]
    mean = total[:-1] / global_count
    deviations = ops.sum(ops.square(inputs - _broadcast(mean, inputs, axes)), axis=axes)
    variance = all_reduce_sum(deviations) / global_count
    return mean, variance


def _broadcast(channel_values, inputs, axes):
    shape = [1 if a in axes else inputs.shape[a] for a in range(len(inputs.shape))]
    return ops.reshape(channel_values, shape)


def _replace_batch_normalization(model, target):
    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization) and type(layer) is not target:
            config = layer.get_config()
            config.pop("synchronized", None)
            return target.from_config(config)
        return layer.__class__.from_config(layer.get_config())

    clone_model = keras.models.clone_model(model, clone_function=clone)
    clone_model.set_weights(model.get_weights())
    return clone_model


def synchronize_batch_normalization(model):
    """Makes `model`'s BatchNorm layers compute batch statistics over all replicas, in place.

    `SwAV` calls it on its encoder when `sync_batchnorm` asks for synchronised BatchNorm, so
    that the encoder the user built (and saves) is the one trained. Unlike
    `to_sync_batch_normalization`, the layers keep their class and config: the model saves
    with plain BatchNorm and loads without this package. On one replica it changes nothing
    but the summation order.

    Args:
        model: a `keras.Model`; nested models are walked.

    Returns:
        The number of BatchNorm layers synchronised (`SyncBatchNormalization` ones count).

    Example:

    >>> import keras
    >>> from swav_keras.layers import synchronize_batch_normalization
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    >>> synchronize_batch_normalization(model)
    1
    """
    count = 0
    for layer in _all_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if not isinstance(layer, SyncBatchNormalization):
            if layer.synchronized or layer.renorm:
                raise ValueError(
                    "Cannot synchronise BatchNorm layer "
                    f"{layer.name!r}: it uses synchronized=True or renorm=True; received "
                    f"synchronized={layer.synchronized}, renorm={layer.renorm}."
                )
            # An instance attribute shadows the class's `_moments`: Keras's `call` (and
            # `NativeBatchNormalization`, which then takes Keras's path) reads the global
            # statistics, and the layer's class and config stay those of plain BatchNorm.
            layer._moments = functools.partial(global_moments, layer)
        count += 1
    return count


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def to_sync_batch_normalization(model):
    """A copy of a functional `model` with every BatchNormalization made synchronised.

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same architecture and weights, with `SyncBatchNormalization`
        layers in place of `keras.layers.BatchNormalization` ones.

    Example:

    >>> from swav_keras.backbones import SmallResNet
    >>> from swav_keras.layers import (SyncBatchNormalization, to_batch_normalization,
    ...                                to_sync_batch_normalization)
    >>> synced = to_sync_batch_normalization(SmallResNet(4, (None, None, 1)))
    >>> any(isinstance(layer, SyncBatchNormalization) for layer in synced.layers)
    True
    >>> plain = to_batch_normalization(synced)  # for export
    >>> any(isinstance(layer, SyncBatchNormalization) for layer in plain.layers)
    False
    """
    return _replace_batch_normalization(model, SyncBatchNormalization)


def to_batch_normalization(model):
    """A copy of `model` with plain `keras.layers.BatchNormalization` (for export).

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same architecture and weights without `SyncBatchNormalization`, so
        that its `.keras` file loads with Keras alone.
    """
    return _replace_batch_normalization(model, keras.layers.BatchNormalization)
