"""Folders of images read by Pillow into NumPy arrays: no TensorFlow.

The layout and order are those of `keras.utils.image_dataset_from_directory(shuffle=False)`,
which `load_images` uses: one subfolder per class (sorted names give the labels), the files of
each class in sorted order, optionally inside `train/`, `test/`... split subfolders.
"""

import functools
import os

import numpy as np

from swav_keras.data import image_checks
from swav_keras.data.source_info import ImageSourceInfo, array_stats

# The formats keras.utils.image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def check_image_size(image_size):
    """`None`, or `image_size` as a `(height, width)` pair of positive ints."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    ok = isinstance(size, (tuple, list)) and len(size) == 2
    if not ok or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            "`image_size` must be a positive int or a (height, width) pair of positive ints; "
            f"received image_size={image_size!r}."
        )
    return tuple(size)


@functools.lru_cache(maxsize=64)
def _taps(in_size, out_size):
    """Source rows (low, high) and the weight of high, for each output row: half-pixel
    centres, clamped at the edges, no antialiasing."""
    centre = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    centre = np.clip(centre, 0, in_size - 1)
    low = np.floor(centre).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (centre - low).astype(np.float32)


def resize(pixels, size):
    """Bilinear resize of `[H, W, C]` or `[N, H, W, C]` pixels to `size`, as float32.

    The interpolation of `tf.image.resize` and `keras.ops.image.resize` (`"bilinear"`,
    half-pixel centres, `antialias=False`), in NumPy: the same pixels on every backend, and
    fast enough per image for `ImageFiles`' reading threads.
    """
    x = np.asarray(pixels)
    low, high, weight = _taps(x.shape[-3], size[0])
    # Rows gathered in the pixels' own dtype (uint8 moves 4x fewer bytes), then float32.
    top, bottom = x[..., low, :, :].astype(np.float32), x[..., high, :, :].astype(np.float32)
    bottom -= top  # in place: lerp(top, bottom) = top + (bottom - top) * weight
    bottom *= weight[:, None, None]
    top += bottom
    low, high, weight = _taps(top.shape[-2], size[1])
    left, right = top[..., low, :], top[..., high, :]
    right -= left
    right *= weight[:, None]
    left += right
    return left


def split_directory(directory, split):
    """The folder holding `split`: `directory/split`, or `directory` itself for `"train"`."""
    if os.path.isdir(os.path.join(directory, split)):
        return os.path.join(directory, split)
    if split != "train":
        raise FileNotFoundError(
            f"Image folder {directory} has no `{split}` subfolder; a folder without split "
            "subfolders is read as split 'train'."
        )
    return directory


def check_has_images(directory):
    """Raises a `FileNotFoundError` saying what was expected when no image is under `directory`."""
    for _, _, files in os.walk(directory):
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in files):
            return
    raise FileNotFoundError(
        f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {directory}; expected "
        "one subfolder of images per class."
    )


def stats_directory(directory, split_folder):
    """The folder whose images give the statistics: `directory/train` when it exists, else the
    split folder read (a folder without split folders is its own training split)."""
    train = os.path.join(directory, "train")
    return train if os.path.isdir(train) else split_folder


def list_images(directory):
    """`(paths, labels, class_names)` of a split folder, in Keras's unshuffled order."""
    class_names = sorted(
        name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name)))
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for root, _, files in sorted(os.walk(os.path.join(directory, name)), key=lambda w: w[0]):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(root, file))
                    labels.append(label)
    return paths, np.asarray(labels, np.int64), tuple(class_names)


def _bad_file(path, error):
    return image_checks.BadImageError(path, f"{type(error).__name__}: {error}")


# What Pillow raises on files it cannot read.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError)


def colour_mode_and_size(path):
    """`(mode, (height, width))` of the images of a folder, from its first image's header.

    The mode is the one `load_images` decodes to: `"L"` (grayscale), `"RGBA"` or `"RGB"`.
    """
    from PIL import Image  # pillow, as keras.utils.load_img

    try:
        with Image.open(path) as image:  # reads the header only
            own, (width, height) = image.mode, image.size
    except _PILLOW_ERRORS as error:
        raise _bad_file(path, error) from error
    return {"L": "L", "RGBA": "RGBA"}.get(own, "RGB"), (height, width)


def read_image(path, mode):
    """Pixels `[H, W, C]` uint8 of the image at `path`, decoded to `mode`."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image if image.mode == mode else image.convert(mode))
    except _PILLOW_ERRORS as error:
        raise _bad_file(path, error) from error
    return pixels[..., None] if pixels.ndim == 2 else pixels


def images_by_class(folder, strict_images=False, take=None):
    """`list_images(folder)` without the files whose header shows they are no image (skipped
    with a warning, or with `strict_images` an error naming the first: `image_checks`); a
    `FileNotFoundError` says what was expected when it finds none. With `take`, only the
    first `take` good files (only as many headers are read as that needs)."""
    paths, labels, class_names = list_images(folder)
    if not paths:
        check_has_images(folder)  # raises when there are none at all
        raise FileNotFoundError(
            f"No images in class subfolders of {folder}; expected one subfolder of images "
            "per class.")
    want = len(paths) if take is None else take
    kept, kept_labels, start = [], [labels[:0]], 0
    while len(kept) < want and start < len(paths):
        end = start + want - len(kept)
        good, good_labels = image_checks.checked_files(paths[start:end], labels[start:end],
                                                       strict_images)
        kept, start = kept + good, end
        kept_labels.append(good_labels)
    paths, labels = kept, np.concatenate(kept_labels)
    if not paths:
        raise FileNotFoundError(f"No readable images under {folder}: every file is bad.")
    return paths, labels, class_names


def _read_all(paths, mode, size, strict_images=False):
    """The images of `paths` stacked: uint8, or float32 when some had to be resized. A file
    that cannot be decoded is replaced by the next good one (`image_checks.read_or_next`)."""
    images = [image_checks.read_or_next(lambda path: read_image(path, mode), paths, row,
                                        strict_images) for row in range(len(paths))]
    if all(x.shape[:2] == size for x in images):
        return np.stack(images)
    return np.stack([x if x.shape[:2] == size else resize(x, size) for x in images]).astype(
        np.float32)


def image_folder_arrays(directory, split="train", image_size=None, take=None,
                        stats_examples=10_000, strict_images=False):
    """Images `[N, H, W, C]`, labels `[N]` and an `ImageSourceInfo` of an image folder.

    What `load_images` gives for a folder, read by Pillow instead of tf.data: the same order,
    labels and statistics (of the training split's first `stats_examples` images, whatever
    `split` is read), so evaluation and in-memory training need no TensorFlow. Images keep
    the first image's colour mode (grayscale, RGB or RGBA); they are uint8 unless some image
    is resized (bilinear, to `image_size` or to the first image's size), then float32 in
    0..255.

    Args:
        directory: the folder, with one subfolder per class (optionally in split folders).
        split: the split folder to read; a folder without split folders is `"train"`.
            Defaults to `"train"`.
        image_size: `(height, width)` to resize to. Defaults to `None`: the first image's size.
        take: read only the first `take` images. Defaults to `None`: all.
        stats_examples: how many of the training split's first images give the mean and std.
            Defaults to `10_000`.
        strict_images: make a bad file (empty, no image header, undecodable) an error
            naming it, instead of skipping it with a warning (`image_checks`).
            Defaults to `False`.

    Returns:
        `(images, labels, info)`.

    Raises:
        FileNotFoundError: no such split, or no images.
        BadImageError: with `strict_images`, a file that Pillow cannot read (named).

    Example: `images, labels, info = image_folder_arrays("~/imagenette2/", "val")`.
    """
    folder = split_directory(directory, split)
    paths, labels, class_names = images_by_class(folder, strict_images)
    mode, first_size = colour_mode_and_size(paths[0])
    size = tuple(image_size or first_size)
    count = len(paths) if take is None else min(len(paths), take)
    images = _read_all(paths[:count], mode, size, strict_images)
    labels = labels[:count]
    train = stats_directory(directory, folder)
    if train != folder:
        train_paths = images_by_class(train, strict_images, stats_examples)[0]
        mean, std = array_stats(_read_all(train_paths, mode, size, strict_images))
    elif count >= min(stats_examples, len(paths)):
        mean, std = array_stats(images[:stats_examples])
    else:
        mean, std = array_stats(_read_all(paths[:stats_examples], mode, size, strict_images))
    info = ImageSourceInfo(folder, split, len(images), len(class_names),
                           tuple(images.shape[1:]), mean, std, class_names)
    return images, labels, info
