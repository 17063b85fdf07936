"""The pretraining recipe's inputs: raw-image batches from arrays, files or tf.data."""

import os


def tensorflow_available():
    """Whether TensorFlow can be imported (tf.data, TensorBoard)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def subset(images, index):
    """`images[index]`, still on disk when `images` is an `ImageFiles`."""
    return images.select(index) if hasattr(images, "select") else images[index]


def served_batches(images, batch_size, seed, epoch, skip=0):
    """`ImageBatches` of an array or `ImageFiles` from batch `skip` of `epoch` on.

    Files are decoded by threads (one per core, 2 to 8), batches ahead of the step.
    """
    from swav_keras.data import ImageBatches, ImageFiles

    workers = max(2, min(8, os.cpu_count() or 1)) if isinstance(images, ImageFiles) else 1
    served = ImageBatches(images, batch_size, seed=seed, workers=workers)
    served.set_epoch(epoch, skip)
    return served


def plain_batches(images):
    """Every image of an array, `ImageFiles` or unbatched `tf.data.Dataset`, in order, in
    batches of 256 (PreciseBN's input)."""
    from swav_keras.data import ImageBatches

    if hasattr(images, "batch"):  # tf.data
        return images.batch(256)
    return ImageBatches(images, min(256, len(images)), shuffle=False, drop_remainder=False)


def image_batches(images, batch_size, seed):
    """tf.data batches of raw images, reshuffled every epoch, for `augment_in_model`."""
    import tensorflow as tf

    images = images.map(lambda image, *_: image)
    if None in images.element_spec.shape[:2]:
        raise ValueError(
            "`augment_in_model` needs images of one size: set `image_size` (e.g. "
            f"--image_size=256); received images of shape {images.element_spec.shape}."
        )
    images = images.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    return images.batch(batch_size, drop_remainder=True).map(
        lambda x: (x,)).prefetch(tf.data.AUTOTUNE)
