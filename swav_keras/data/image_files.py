"""Images that stay on disk until indexed: an image folder streamed without TensorFlow."""

import os

import numpy as np

from swav_keras.data import image_checks, image_folder
from swav_keras.data.source_info import ImageSourceInfo, array_stats

COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


class ImageFiles:
    """A read-only array of images whose pixels are read from their files when indexed.

    For data that does not fit in memory and a machine without TensorFlow (or a wish to keep
    tf.data out of the input): `files[rows]` decodes those files with Pillow, as
    `keras.utils.load_img` does, and returns their pixels `[n, H, W, C]`; nothing else is
    held but the paths. `swav_keras.data.ImageBatches` serves it to `fit` batch by batch (its
    `workers` threads decode the next batches while the model trains), and it goes wherever
    code only slices an array: statistics, plots, `np.asarray(files)` (which reads them all).

    An image whose size is not `image_size` is resized (bilinear, as `tf.image.resize` and
    `load_arrays` resize). The pixels are float32 in 0..255
    when `image_size` is given, and the files' uint8 otherwise; then images of another size
    than the first are resized to its size and rounded back to uint8.

    A file that cannot be decoded (truncated, corrupt) is named in a warning, once, and its
    row holds the next readable file's pixels, so batches keep their shape
    (`swav_keras.data.image_checks`); `strict_images=True` raises instead, naming it.

    Args:
        paths: the image files (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`), a non-empty list.
        image_size: int or `(height, width)` every image is resized to. Defaults to `None`:
            the first image's size.
        color_mode: `"grayscale"`, `"rgb"` or `"rgba"`, the channels decoded to (as
            `keras.utils.image_dataset_from_directory`'s `color_mode`). Defaults to `None`:
            the first image's (`"grayscale"`, `"rgba"`, else `"rgb"`).
        strict_images: raise a `BadImageError` naming a file that cannot be read, when it
            is read, instead of skipping it. Defaults to `False`.

    Raises:
        BadImageError: with `strict_images`, a file that Pillow cannot read, when it is read.

    Example:

    ```python
    from swav_keras.data import ImageBatches, load_arrays

    files, labels, info = load_arrays("~/imagenette2", lazy=True, image_size=160)
    batches = ImageBatches(files, batch_size=256, seed=0, workers=4)  # for SwAV(augmentation=)
    ```
    """

    def __init__(self, paths, image_size=None, color_mode=None, strict_images=False):
        if isinstance(paths, (str, bytes)) or not hasattr(paths, "__len__") or len(paths) == 0:
            raise ValueError(
                f"`paths` must be a non-empty list of image files; received paths={paths!r}."
            )
        self.paths = tuple(os.fspath(path) for path in paths)
        if color_mode is not None and color_mode not in COLOR_MODES:
            raise ValueError(
                f"`color_mode` must be one of {sorted(COLOR_MODES)} or None; received "
                f"color_mode={color_mode!r}."
            )
        self.image_size = image_folder.check_image_size(image_size)
        self.strict_images = image_checks.check_strict_images(strict_images)
        self.color_mode = color_mode
        if color_mode is None or image_size is None:
            mode, first_size = image_folder.colour_mode_and_size(self.paths[0])
            own = {value: key for key, value in COLOR_MODES.items()}[mode]
            self.color_mode = color_mode or own
        self._size = self.image_size or first_size
        self._mode = COLOR_MODES[self.color_mode]

    @property
    def shape(self):
        """`(N, height, width, channels)`."""
        return (len(self.paths), *self._size, len(self._mode))

    @property
    def dtype(self):
        """`float32` when `image_size` is given, else `uint8`."""
        return np.dtype("float32" if self.image_size else "uint8")

    @property
    def ndim(self):
        return 4

    def __len__(self):
        return len(self.paths)

    def _rows(self, index):
        """The file numbers `index` (int, slice or integer array, NumPy's rules) selects."""
        return np.arange(len(self.paths))[index]

    def select(self, index):
        """The files that `index` selects, as a new `ImageFiles` (nothing is read)."""
        rows = np.atleast_1d(self._rows(index))
        return ImageFiles([self.paths[row] for row in rows], self.image_size, self.color_mode,
                          self.strict_images)

    def _image(self, row):
        pixels = image_checks.read_or_next(
            lambda path: image_folder.read_image(path, self._mode), self.paths, row,
            self.strict_images)
        if pixels.shape[:2] != self._size:
            pixels = image_folder.resize(pixels, self._size)
            if self.image_size is None:
                pixels = np.clip(np.rint(pixels), 0, 255)
        return pixels.astype(self.dtype, copy=False)

    def __getitem__(self, index):
        rows = self._rows(index)
        if np.ndim(rows) == 0:
            return self._image(int(rows))
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for position, row in enumerate(rows):
            out[position] = self._image(row)
        return out

    def __array__(self, dtype=None, copy=None):
        pixels = self[:]
        return pixels if dtype is None else pixels.astype(dtype)

    def __repr__(self):
        return (f"ImageFiles({len(self)} files, image shape {self.shape[1:]}, "
                f"dtype {self.dtype.name})")


def image_folder_files(directory, split="train", image_size=None, take=None,
                       stats_examples=10_000, strict_images=False):
    """`image_folder_arrays`' `(images, labels, info)` with `images` an `ImageFiles`.

    Nothing is decoded but the training split's first `stats_examples` images, for the
    statistics (read in chunks of 256), and the first image's header.

    Args:
        directory: the folder, with one subfolder per class (optionally in split folders).
        split: the split folder to read. Defaults to `"train"`.
        image_size: `(height, width)` to resize to. Defaults to `None`: the first image's size.
        take: only the first `take` images. Defaults to `None`: all.
        stats_examples: how many of the training split's first images give the mean and std.
            Defaults to `10_000`.
        strict_images: make a bad file an error naming it instead of skipping it.
            Defaults to `False`.
    """
    folder = image_folder.split_directory(directory, split)
    paths, labels, class_names = image_folder.images_by_class(folder, strict_images)
    count = len(paths) if take is None else min(len(paths), take)
    files = ImageFiles(paths[:count], image_size, strict_images=strict_images)
    train = image_folder.stats_directory(directory, folder)
    stats_paths = paths if train == folder else image_folder.images_by_class(
        train, strict_images, stats_examples)[0]
    # As image_folder_arrays: float32 pixels resized to this split's image size.
    stats_files = ImageFiles(stats_paths[:stats_examples], files.shape[1:3], files.color_mode,
                             strict_images)
    mean, std = array_stats(stats_files, chunk=256)
    info = ImageSourceInfo(folder, split, count, len(class_names), files.shape[1:], mean, std,
                           class_names)
    return files, labels[:count], info
