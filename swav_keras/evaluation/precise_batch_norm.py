"""PreciseBN: an encoder's BatchNorm statistics recomputed on the images it will be used on."""

import numbers

import keras
import numpy as np

from swav_keras.evaluation.features import check_images
from swav_keras.keras_internals import flatten_layers
from swav_keras.validation import check_int


def precise_batch_norm(encoder, images, batch_size=256, num_examples=None):
    """Recomputes the moving mean and variance of every BatchNorm layer of `encoder` in place.

    During SwAV pretraining each BatchNorm layer's moving statistics are an exponential
    average over the training crops: high- and low-resolution crops, colour-jittered, mixed
    in every step. Downstream the encoder sees plain images (kNN, linear probe, users'
    data), whose statistics differ. PreciseBN (Wu & Johnson, "Rethinking 'Batch' in
    BatchNorm", 2021; `pycls`' `compute_precise_bn_stats`) replaces each moving average by the
    population statistics of the layer's inputs over `images`: the encoder runs in training
    mode (each BatchNorm normalises by its batch, as in training), and each layer's mean and
    variance are pooled over all the batches, exactly (the variance by the law of total
    variance, not an average of batch variances). Only labels-free images are used; weights
    are not changed.

    If anything fails part-way (bad data, an interrupted call), the original statistics,
    momentum and `trainable` flags are restored: the encoder is never left half-updated.

    Args:
        encoder: a built `keras.Model` (or layer) holding at least one
            `keras.layers.BatchNormalization` (nested models included).
        images: the images as the encoder takes them, either an array `[N, ...]` (NumPy or
            a backend tensor) or an iterable of batches (for example a batched
            `tf.data.Dataset` or a `keras.utils.PyDataset`); a batch that is a tuple or list
            contributes its first element (the images of `(images, labels)`).
        batch_size: positive int, images per forward pass when `images` is an array.
            Defaults to `256`.
        num_examples: positive int or `None`: use only the first `num_examples` images (a
            few thousand are enough; the pooled statistics barely move beyond). Defaults to
            `None` (all of them).

    Returns:
        The number of images the statistics were computed on.

    Example:

    ```python
    import keras
    from swav_keras.evaluation import precise_batch_norm

    encoder = keras.saving.load_model("encoder.keras")
    precise_batch_norm(encoder, images, num_examples=20000)
    encoder.save("encoder_precise_bn.keras")
    ```
    """
    if not isinstance(encoder, keras.layers.Layer):
        raise TypeError(
            "`encoder` must be a keras.Model or layer; received encoder of type "
            f"{type(encoder).__name__}."
        )
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if num_examples is not None:
        num_examples = check_int("num_examples", num_examples, minimum=1)
    norms = [
        layer for layer in flatten_layers(encoder)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not norms:
        raise ValueError(
            f"`encoder` ({encoder.name!r}) has no BatchNormalization layer: there are no "
            "statistics to recompute."
        )
    if not encoder.built:
        raise ValueError(
            f"`encoder` ({encoder.name!r}) is not built: call it on a batch first."
        )
    saved = [
        (layer.momentum, layer.trainable,
         keras.ops.convert_to_numpy(layer.moving_mean),
         keras.ops.convert_to_numpy(layer.moving_variance))
        for layer in norms
    ]
    sums = [np.zeros(np.shape(mean), "float64") for _, _, mean, _ in saved]
    squares = [np.zeros_like(total) for total in sums]
    count = 0
    finished = False
    try:
        for layer in norms:
            layer.momentum = 0.0  # moving statistic := this batch's statistic
            layer.trainable = True  # BatchNormalization normalises by the batch only then
        for batch in _batches(images, batch_size):
            if num_examples is not None:
                batch = batch[: num_examples - count]
            size = int(batch.shape[0])
            if size == 0:
                break
            encoder(batch, training=True)
            for index, layer in enumerate(norms):
                mean = keras.ops.convert_to_numpy(layer.moving_mean).astype("float64")
                variance = keras.ops.convert_to_numpy(layer.moving_variance).astype("float64")
                sums[index] += size * mean
                squares[index] += size * (variance + mean**2)
            count += size
            if num_examples is not None and count >= num_examples:
                break
        if count == 0:
            raise ValueError("`images` holds no image: there is nothing to compute on.")
        for index, layer in enumerate(norms):
            mean = sums[index] / count
            variance = np.maximum(squares[index] / count - mean**2, 0.0)
            layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        finished = True
    finally:
        for layer, (momentum, trainable, mean, variance) in zip(norms, saved):
            layer.momentum = momentum
            layer.trainable = trainable
            if not finished:
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
    return count


def _batches(images, batch_size):
    """Yields float32 NumPy batches of `images` (an array, or an iterable of batches)."""
    not_images = TypeError(
        "`images` must be an array of images or an iterable of batches; received images of "
        f"type {type(images).__name__}."
    )
    if isinstance(images, (str, bytes, numbers.Number)) or images is None:
        raise not_images
    if hasattr(images, "shape") and hasattr(images, "dtype"):
        array = check_images("images", images)
        for start in range(0, len(array), batch_size):
            yield array[start : start + batch_size].astype("float32")
        return
    if isinstance(images, keras.utils.PyDataset):
        batches = (images[index] for index in range(len(images)))
    else:
        try:
            batches = iter(images)
        except TypeError:
            raise not_images from None
    for batch in batches:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield keras.ops.convert_to_numpy(batch).astype("float32")
