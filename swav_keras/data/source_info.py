"""What a recipe needs to know about its images, and their pixel statistics (NumPy only)."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageSourceInfo:
    """What `load_images` and `load_arrays` know about their images.

    Attributes:
        name: the source (dataset name, folder or `"arrays"`).
        split: the split read.
        num_examples: examples in the dataset (after `take`).
        num_classes: distinct labels, or `None` when unknown.
        image_shape: `(height, width, channels)`; `None` sides vary per image.
        mean: per-channel mean of the training pixels, 0..255 scale.
        std: per-channel standard deviation of the training pixels, 0..255 scale.
        class_names: label names when the source has them, else `None`.
    """

    name: str
    split: str
    num_examples: int
    num_classes: int | None
    image_shape: tuple
    mean: tuple
    std: tuple
    class_names: tuple | None = None


def stats_from_sums(total, squares, count):
    """Per-channel mean and std (tuples of floats) from pixel sums, sums of squares, count."""
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def array_stats(images, chunk=4096):
    """Per-channel mean and std of `[N, H, W, C]` pixels (an array, or anything sliced like
    one, such as `ImageFiles`), in float64 chunks."""
    total = squares = 0.0
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].astype(np.float64)
        total = total + x.sum(axis=(0, 1, 2))
        squares = squares + np.square(x).sum(axis=(0, 1, 2))
    return stats_from_sums(total, squares, len(images) * images.shape[1] * images.shape[2])


def checked_pair(images, labels):
    """`(images [N, H, W, C], labels int64 [N])` of an `(images, labels)` source, checked."""
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(
            "`source` arrays must be images [N, H, W(, C)] and labels [N]; received "
            f"images.shape={images.shape}, labels.shape={labels.shape}."
        )
    return images, labels
