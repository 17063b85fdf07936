"""One entry point to the images a recipe trains or evaluates on, with their statistics.

`load_images` turns a source name into an unbatched `tf.data.Dataset` of `(image, label)` in raw
pixel scale (0..255), and an `ImageSourceInfo` with what a recipe needs to build its model: the
number of examples and classes, the image shape, and the per-channel mean and standard deviation
of the training pixels, for the encoder's `keras.layers.Normalization(mean=..., variance=...)`.
Nothing is loaded at import time; the tfds path never blocks on an unreachable network.
"""

import dataclasses
import os

import tensorflow as tf

from swav_keras.data import fashion_mnist, image_folder
from swav_keras.data.folder_dataset import folder_dataset
from swav_keras.data.image_checks import check_strict_images, named_errors
from swav_keras.data.source_info import (
    ImageSourceInfo,
    array_stats,
    checked_pair,
    stats_from_sums,
)
from swav_keras.validation import check_int


def _dataset_stats(dataset, examples):
    """Per-channel mean and std over the pixels of the first `examples` images (any sizes)."""

    def sums(image, label):
        x = tf.cast(image, tf.float64)
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:2]), tf.float64)
        return tf.reduce_sum(x, [0, 1]), tf.reduce_sum(tf.square(x), [0, 1]), count

    channels = dataset.element_spec[0].shape[-1]
    zeros = tf.zeros([channels], tf.float64)
    with named_errors():  # a strict image check's error, not tf.data's wrapper of it
        total, squares, count = dataset.take(examples).map(sums, tf.data.AUTOTUNE).reduce(
            (zeros, zeros, tf.constant(0.0, tf.float64)),
            lambda acc, s: (acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]),
        )
    return stats_from_sums(total.numpy(), squares.numpy(), max(float(count), 1.0))


def _resize(image_size):
    def resize(image, label):
        return tf.image.resize(image, image_size), label

    return resize


def _from_arrays(images, labels, name, split, image_size, take, stats):
    images, labels = checked_pair(images, labels)
    mean, std = stats if stats is not None else array_stats(images)
    num_classes = int(labels.max()) + 1 if labels.size else 0
    if take is not None:
        images, labels = images[:take], labels[:take]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    shape = tuple(images.shape[1:])
    if image_size is not None:
        dataset = dataset.map(_resize(image_size), tf.data.AUTOTUNE)
        shape = (*image_size, shape[-1])
    info = ImageSourceInfo(name, split, len(images), num_classes, shape, mean, std)
    return dataset, info


def _load_fashion_mnist(split, data_dir, image_size, take):
    images, labels, info = fashion_mnist.fashion_mnist_arrays(split, data_dir)
    stats = (info.mean, info.std)
    dataset, info = _from_arrays(images, labels, "fashion_mnist", split, image_size, take, stats)
    return dataset, dataclasses.replace(info, num_classes=10, class_names=fashion_mnist.CLASS_NAMES)


def _from_folder(directory, split, image_size, take, stats_examples, strict_images):
    # Files that are no images are left out here, undecodable ones in `folder_dataset`.
    folder = image_folder.split_directory(directory, split)
    paths, labels, class_names = image_folder.images_by_class(folder, strict_images)
    mode, size = image_folder.colour_mode_and_size(paths[0])
    image_size = image_size or size
    dataset = folder_dataset(paths, labels, image_size, len(mode), strict_images)
    num_examples = len(paths)
    train = image_folder.stats_directory(directory, folder)
    stats_dataset = dataset
    if train != folder:
        train_paths, train_labels, _ = image_folder.images_by_class(train, strict_images,
                                                                    stats_examples)
        stats_dataset = folder_dataset(train_paths, train_labels, image_size, len(mode),
                                       strict_images)
    mean, std = _dataset_stats(stats_dataset, stats_examples)
    if take is not None:
        dataset = dataset.take(take)
        num_examples = min(num_examples, take)
    info = ImageSourceInfo(
        folder, split, num_examples, len(class_names), tuple(dataset.element_spec[0].shape),
        mean, std, class_names,
    )
    return dataset, info


def _tfds_builder(name, data_dir):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            f"Loading {name!r} needs tensorflow_datasets (`pip install tensorflow-datasets`); "
            "or pass an image folder or (images, labels) arrays as `source`."
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            "`source` must be 'fashion_mnist', a tensorflow_datasets name, an existing image "
            f"folder or (images, labels) arrays; received source={name!r}."
        ) from None
    if builder.is_prepared():
        return builder
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if manual:
        manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual")
        if not (os.path.isdir(manual_dir) and os.listdir(manual_dir)):
            raise FileNotFoundError(
                f"tensorflow_datasets dataset {name!r} is not prepared in {builder.data_dir} "
                f"and needs a manual download: put its files in {manual_dir} (pass the folder "
                f"above `downloads` as `data_dir`). Instructions: {manual.strip()}"
            )
    elif not fashion_mnist.network_available():
        raise FileNotFoundError(
            f"tensorflow_datasets dataset {name!r} is not prepared in {builder.data_dir} and "
            "no network answers to download it. Prepare it on a machine with internet "
            f"(`tfds build {name} --data_dir=DIR`), copy DIR here and pass it as `data_dir`."
        )
    builder.download_and_prepare()
    return builder


def _from_tfds(name, split, data_dir, image_size, take, stats_examples):
    builder = _tfds_builder(name, data_dir)
    info = builder.info
    dataset = builder.as_dataset(split=split, as_supervised=True)
    dataset = dataset.map(lambda x, y: (x, tf.cast(y, tf.int64)))
    stats_split = "train" if "train" in info.splits else split
    train = builder.as_dataset(split=stats_split, as_supervised=True)
    mean, std = _dataset_stats(train, stats_examples)
    try:
        num_examples = info.splits[split].num_examples
    except KeyError:  # no split metadata (e.g. tfds.testing.mock_data): count
        num_examples = int(dataset.reduce(0, lambda count, _: count + 1))
    shape = tuple(info.features["image"].shape)
    if image_size is not None:
        dataset = dataset.map(_resize(image_size), tf.data.AUTOTUNE)
        shape = (*image_size, shape[-1])
    if take is not None:
        dataset = dataset.take(take)
        num_examples = min(num_examples, take)
    label = info.features["label"]
    names = tuple(label.names) if hasattr(label, "names") else None
    num_classes = getattr(label, "num_classes", None)
    result = ImageSourceInfo(name, split, num_examples, num_classes, shape, mean, std, names)
    return dataset, result


def load_images(source, split="train", data_dir=None, image_size=None, take=None,
                stats_examples=10_000, strict_images=False):
    """Loads images and labels from a dataset name, an image folder or arrays.

    The returned dataset is unbatched and unshuffled; feed it to `multicrop_dataset` for SwAV
    training, or batch it for evaluation. Images are in raw pixel scale (uint8, or float32 in
    0..255 after decoding or resizing): normalise inside the encoder with `info.mean` and
    `info.std`, so that the saved encoder takes raw pixels. The statistics always describe the
    training split (for tfds and folders its first `stats_examples` images), whatever `split`
    is read, so the same normalisation serves training and evaluation.

    Args:
        source: one of `"fashion_mnist"` (offline idx reader, see `load_fashion_mnist`), another
            tensorflow_datasets name (`"cifar10"`, `"imagenette"`, `"imagenet2012"` with its
            manual files under `data_dir`), a folder of images with one subfolder per class
            (optionally inside `train/`, `test/`... split subfolders), or a pair of arrays
            `(images [N, H, W(, C)], labels [N])` (then `split` is only a name).
        split: the split to read, e.g. `"train"`, `"test"`, `"validation"`.
            Defaults to `"train"`.
        data_dir: folder of the data (idx files, or the tensorflow_datasets data folder).
            Defaults to `None`: the standard places.
        image_size: int or `(height, width)` to resize every image to (bilinear); for folders of
            images, `None` takes the size of the first image. Defaults to `None`.
        take: use only the first `take` examples. Defaults to `None`: all.
        stats_examples: how many training images give the mean and std of datasets read from
            tfds or folders (arrays and Fashion-MNIST use them all). Defaults to `10_000`.
        strict_images: for a folder, make a bad file (empty, no image header,
            undecodable) an error naming it, instead of skipping it with a warning (an
            undecodable file's place is then taken by the next good image:
            `swav_keras.data.image_checks`). Defaults to `False`.

    Returns:
        `(dataset, info)`: a `tf.data.Dataset` of `(image [H, W, C], label int64)` and an
        `ImageSourceInfo`.

    Raises:
        FileNotFoundError: the data is not on disk and cannot be fetched; the message says where
            it looked and how to get it.
        ValueError: an unknown source or bad arguments.

    Example:

    ```python
    import keras
    import numpy as np
    from swav_keras.data import load_images

    dataset, info = load_images("fashion_mnist", take=1024)
    normalize = keras.layers.Normalization(mean=info.mean, variance=np.square(info.std))
    ```
    """
    image_size = image_folder.check_image_size(image_size)
    take = None if take is None else check_int("take", take, minimum=1)
    stats_examples = check_int("stats_examples", stats_examples, minimum=1)
    check_strict_images(strict_images)
    if not isinstance(split, str):
        raise TypeError(f"`split` must be a string; received split={split!r}.")
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return _from_arrays(source[0], source[1], "arrays", split, image_size, take, None)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "`source` must be a dataset name, a folder or an (images, labels) pair; "
            f"received source={source!r}."
        )
    source = os.fspath(source)
    if source == "fashion_mnist":
        return _load_fashion_mnist(split, data_dir, image_size, take)
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        return _from_folder(path, split, image_size, take, stats_examples, strict_images)
    if os.sep in source or source.startswith((".", "~")):
        raise FileNotFoundError(f"Image folder {path} does not exist.")
    return _from_tfds(source, split, data_dir, image_size, take, stats_examples)
