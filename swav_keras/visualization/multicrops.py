"""A PNG grid of the V crops of a few images: see what the multi-crop augmentation feeds SwAV."""

import os

import numpy as np
from matplotlib.figure import Figure

from swav_keras.validation import check_int

_CELL_INCHES = 1.1  # the largest crop's side on the page
_GAP_INCHES = 0.08
_DPI = 100


def plot_multicrops(
    crops, path, num_images=4, same_size=False, value_range=(0.0, 255.0), title=None
):
    """Draws, for each of a few images, its V crops side by side, and writes a PNG.

    Checking an augmentation pipeline by its numbers is hard; a look at its crops shows at
    once a crop too small to recognise, a flip that never happens, a jitter that saturates.
    Row `i` holds crop 0 .. V-1 of image `i`. By default each crop is drawn at its own size
    relative to the largest (a 14x14 local crop takes a quarter of a 28x28 global one's
    area), so the resolution groups are visible; `same_size=True` scales every crop to fill
    its cell. One-channel crops are drawn in gray with a fixed range (no per-image contrast
    stretch, so brightness jitter stays visible); three-channel crops as RGB. Uses
    matplotlib's Agg canvas: no screen needed.

    Args:
        crops: sequence of V arrays `[B, H_v, W_v, C]` (C = 1 or 3; sizes may differ between
            crops), e.g. a `MultiCrop`'s output, or an element `((crop_0, ...),)` of
            `multicrop_dataset` (the outer 1-tuple is unwrapped).
        path: where to write the PNG (parent folders are created).
        num_images: positive int, the number of images (rows) shown, at most B.
            Defaults to `4`.
        same_size: bool, scale every crop to the same cell. Defaults to `False`.
        value_range: `(low, high)` pixel values drawn black and white. Defaults to
            `(0.0, 255.0)`.
        title: optional figure title. Defaults to `None`.

    Returns:
        `path`.

    Example:

    ```python
    from swav_keras.data import MultiCrop, multicrop_dataset
    from swav_keras.visualization import plot_multicrops

    multicrop = MultiCrop((2, 4), (28, 14), (0.3, 0.08), (1.0, 0.3), saturation=0, hue=0)
    batch = next(iter(multicrop_dataset(images, multicrop, batch_size=8, seed=0)))
    plot_multicrops(batch, "crops.png", num_images=4)
    ```

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020 (multi-crop, section 3.2).
    """
    if isinstance(crops, tuple) and len(crops) == 1 and isinstance(crops[0], (tuple, list)):
        crops = crops[0]
    if isinstance(crops, dict) or not isinstance(crops, (tuple, list)) or not crops:
        raise TypeError(
            "`crops` must be a non-empty sequence of arrays [B, H, W, C]; "
            f"received crops of type {type(crops).__name__}."
        )
    crops = [check_images(f"crops[{v}]", crop) for v, crop in enumerate(crops)]
    for v, crop in enumerate(crops[1:], start=1):
        if len(crop) != len(crops[0]):
            raise ValueError(
                f"`crops[{v}]` must hold as many images as `crops[0]` ({len(crops[0])}); "
                f"received len(crops[{v}])={len(crop)}."
            )
    num_images = check_int("num_images", num_images, minimum=1)
    num_images = min(num_images, len(crops[0]))
    low, high = check_value_range(value_range)

    largest = max(max(crop.shape[1:3]) for crop in crops)
    cell, gap = _CELL_INCHES, _GAP_INCHES
    left, top, bottom, right = 0.75, 0.45 + (0.3 if title else 0.0), 0.1, 0.1
    width = left + len(crops) * (cell + gap) + right
    height = top + num_images * (cell + gap) + bottom
    figure = Figure(figsize=(width, height), dpi=_DPI)
    if title:
        figure.suptitle(title, y=1 - 0.12 / height, va="top")
    for v, crop in enumerate(crops):
        h, w = crop.shape[1:3]
        box_w, box_h = (cell, cell) if same_size else (cell * w / largest, cell * h / largest)
        x0 = left + v * (cell + gap) + (cell - box_w) / 2
        for i in range(num_images):
            y0 = height - top - i * (cell + gap) - cell + (cell - box_h) / 2
            axes = figure.add_axes([x0 / width, y0 / height, box_w / width, box_h / height])
            show_image(axes, crop[i], low, high)
            if i == 0:  # column header at the top of the cell, whatever the crop's size
                figure.text(
                    (left + v * (cell + gap) + cell / 2) / width,
                    (height - top + 0.05) / height,
                    f"crop {v}\n{h}x{w}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
            if v == 0:
                figure.text(
                    (left - 0.1) / width,
                    (y0 + box_h / 2) / height,
                    f"image {i}",
                    ha="right",
                    va="center",
                    fontsize=8,
                )
    return save(figure, path)


# ------------------------------------------------------------ shared by the other pictures


def check_images(name, images):
    """Returns `images` as a NumPy array `[N, H, W, C]` with C in (1, 3) and N >= 1."""
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or len(array) == 0:
        raise ValueError(
            f"`{name}` must be a 4-D array [N, H, W, C] with 1 or 3 channels and N >= 1; "
            f"received {name}.shape={array.shape}."
        )
    return array


def check_value_range(value_range):
    """Returns `(low, high)` as floats with low < high."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not low < high:
        raise ValueError(
            f"`value_range` must be a pair (low, high) with low < high; "
            f"received value_range={value_range!r}."
        )
    return low, high


def show_image(axes, image, low, high):
    """Draws one `[H, W, C]` image on `axes`, values `low..high` as black..white."""
    image = np.clip((np.asarray(image, "float32") - low) / (high - low), 0.0, 1.0)
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        axes.imshow(image, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_color("0.7")


def save(figure, path):
    """Writes `figure` as a PNG at `path` (creating its folder) and returns `path`."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI, facecolor="white")
    return path
