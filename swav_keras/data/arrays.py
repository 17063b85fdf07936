"""A split of images as NumPy arrays; Fashion-MNIST without TensorFlow."""

import dataclasses

import numpy as np

from swav_keras.data.fashion_mnist import fashion_mnist_arrays
from swav_keras.validation import check_int


def load_arrays(source, split="train", data_dir=None, image_size=None, take=None):
    """Images `[N, H, W, C]` (raw pixels) and labels `[N]` of one split, as NumPy arrays.

    For evaluation, and for `SwAV(augmentation=...)` training on data that fits in memory.
    Fashion-MNIST at its own size is read by NumPy alone, so it needs no TensorFlow; every
    other source (and any `image_size`) goes through `load_images` and tf.data.

    Args:
        source: as `load_images`'s: `"fashion_mnist"`, a tensorflow_datasets name, a folder of
            images, or an `(images, labels)` pair.
        split: the split to read. Defaults to `"train"`.
        data_dir: folder of the data. Defaults to `None`: the standard places.
        image_size: int or `(height, width)` to resize to. Defaults to `None`: keep.
        take: use only the first `take` examples. Defaults to `None`: all.

    Returns:
        `(images, labels, info)`: the arrays and an `ImageSourceInfo` (statistics of the
        training split).

    Example: `images, labels, info = load_arrays("fashion_mnist", "test", take=1000)`.
    """
    if isinstance(source, str) and source == "fashion_mnist" and image_size is None:
        take = None if take is None else check_int("take", take, minimum=1)
        if not isinstance(split, str):
            raise TypeError(f"`split` must be a string; received split={split!r}.")
        images, labels, info = fashion_mnist_arrays(split, data_dir)
        if take is not None:
            images, labels = images[:take], labels[:take]
        return images, labels, dataclasses.replace(info, num_examples=len(images))
    from swav_keras.data.sources import load_images

    dataset, info = load_images(source, split, data_dir, image_size, take=take)
    pixels, labels = [], []
    for x, y in dataset.batch(4096):
        pixels.append(x.numpy())
        labels.append(y.numpy())
    if not pixels:
        raise ValueError(f"{info.name!r} split {split!r} holds no images.")
    return np.concatenate(pixels), np.concatenate(labels), info
