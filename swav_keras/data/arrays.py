"""A split of images as NumPy arrays; Fashion-MNIST, folders and arrays without TensorFlow."""

import dataclasses
import os

import numpy as np

from swav_keras.data.fashion_mnist import fashion_mnist_arrays
from swav_keras.data.image_checks import check_strict_images
from swav_keras.data.image_files import image_folder_files
from swav_keras.data.image_folder import check_image_size, image_folder_arrays, resize
from swav_keras.data.source_info import ImageSourceInfo, array_stats, checked_pair
from swav_keras.validation import check_int


def _pair_arrays(images, labels, name, split, image_size, take, stats=None, chunk=4096):
    images, labels = checked_pair(images, labels)
    mean, std = stats if stats is not None else array_stats(images)
    num_classes = int(labels.max()) + 1 if labels.size else 0
    if take is not None:
        images, labels = images[:take], labels[:take]
    if image_size is not None:
        images = np.concatenate([resize(images[i:i + chunk], image_size)
                                 for i in range(0, len(images), chunk)])
    info = ImageSourceInfo(name, split, len(images), num_classes, tuple(images.shape[1:]),
                           mean, std)
    return images, labels, info


def load_arrays(source, split="train", data_dir=None, image_size=None, take=None, lazy=False,
                strict_images=False):
    """Images `[N, H, W, C]` (raw pixels) and labels `[N]` of one split, as NumPy arrays.

    For evaluation, and for `SwAV(augmentation=...)` training (`lazy=True` keeps an image
    folder on disk). Fashion-MNIST, image folders (read by Pillow) and `(images, labels)` pairs
    need no TensorFlow: they give what `load_images` gives, `image_size` resizing as
    `tf.image.resize` does (bilinear, float32, in NumPy). tensorflow_datasets names go through
    `load_images` and tf.data.

    Args:
        source: as `load_images`'s: `"fashion_mnist"`, a tensorflow_datasets name, a folder of
            images, or an `(images, labels)` pair.
        split: the split to read. Defaults to `"train"`.
        data_dir: folder of the data. Defaults to `None`: the standard places.
        image_size: int or `(height, width)` to resize to. Defaults to `None`: keep.
        take: use only the first `take` examples. Defaults to `None`: all.
        lazy: for an image folder, return its images as an `ImageFiles`, read from disk when
            indexed (for folders larger than memory; `ImageBatches` streams it to `fit`),
            instead of reading them all now. Other sources are read into memory whatever
            its value. Defaults to `False`.
        strict_images: for an image folder, make a bad file (empty, no image header,
            undecodable) an error naming it instead of skipping it with a warning
            (`swav_keras.data.image_checks`). Defaults to `False`.

    Returns:
        `(images, labels, info)`: the arrays (or `ImageFiles`) and an `ImageSourceInfo`
        (statistics of the training split).

    Example: `images, labels, info = load_arrays("fashion_mnist", "test", take=1000)`.
    """
    image_size = check_image_size(image_size)
    take = None if take is None else check_int("take", take, minimum=1)
    if not isinstance(split, str):
        raise TypeError(f"`split` must be a string; received split={split!r}.")
    if not isinstance(lazy, bool):
        raise TypeError(f"`lazy` must be a bool; received lazy={lazy!r}.")
    check_strict_images(strict_images)
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return _pair_arrays(source[0], source[1], "arrays", split, image_size, take)
    if isinstance(source, str) and source == "fashion_mnist":
        images, labels, info = fashion_mnist_arrays(split, data_dir)
        images, labels, read = _pair_arrays(images, labels, "fashion_mnist", split, image_size,
                                            take, stats=(info.mean, info.std))
        return images, labels, dataclasses.replace(
            info, num_examples=read.num_examples, image_shape=read.image_shape)
    folder = os.path.expanduser(os.fspath(source)) if isinstance(
        source, (str, os.PathLike)) else None
    if folder and os.path.isdir(folder):
        read = image_folder_files if lazy else image_folder_arrays
        return read(folder, split, image_size, take, strict_images=strict_images)
    from swav_keras.data.sources import load_images  # tensorflow_datasets, through tf.data

    dataset, info = load_images(source, split, data_dir, image_size, take=take)
    pixels, labels = [], []
    for x, y in dataset.batch(4096):
        pixels.append(x.numpy())
        labels.append(y.numpy())
    if not pixels:
        raise ValueError(f"{info.name!r} split {split!r} holds no images.")
    return np.concatenate(pixels), np.concatenate(labels), info
