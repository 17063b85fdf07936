"""Random resized crops (torchvision's `RandomResizedCrop`) and flips, with `keras.ops`.

Every crop of every image draws its own box and flip. Crops are read by bilinear interpolation
written as two batched matrix products (rows, then columns), each crop's interpolation matrix
built from its box: no gather, no per-image loop, the same code on every backend.
"""

import math

from swav_keras.augmentation.backend_ops import ops, uniform
from swav_keras.validation import check_seed_generator


def crop_boxes(num_boxes, height, width, scale, seed_generator, ratio=(3 / 4, 4 / 3),
               attempts=10):
    """Samples `RandomResizedCrop` boxes: `(top, left, height, width)` in whole pixels.

    torchvision's algorithm, vectorised: each box tries `attempts` draws of an area fraction
    uniform in `scale` and an aspect ratio (width / height) log-uniform in `ratio`, rounds the
    sides and keeps the first draw that fits in the image, at a uniform position. When none
    fits, the box is the central crop of the whole image with its aspect clamped to `ratio`.

    Args:
        num_boxes: int, number of boxes.
        height: image height in pixels, int or scalar tensor.
        width: image width in pixels, int or scalar tensor.
        scale: `(low, high)` area fraction of the image.
        seed_generator: a `keras.random.SeedGenerator`, advanced by each draw.
        ratio: `(low, high)` aspect ratio. Defaults to `(3 / 4, 4 / 3)`.
        attempts: draws per box before the fallback. Defaults to `10`.

    Returns:
        float32 tensor `[num_boxes, 4]` of whole numbers: top, left, height, width.

    Example: `crop_boxes(8, 28, 28, (0.08, 1.0), keras.random.SeedGenerator(0))`.
    """
    check_seed_generator("seed_generator", seed_generator)
    h_img, w_img = ops.cast(height, "float32"), ops.cast(width, "float32")
    draws = (num_boxes, attempts)
    area = h_img * w_img * uniform(draws, seed_generator, scale[0], scale[1])
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = ops.exp(uniform(draws, seed_generator, log_ratio[0], log_ratio[1]))
    w = ops.round(ops.sqrt(area * aspect))
    h = ops.round(ops.sqrt(area / aspect))
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = ops.expand_dims(ops.argmax(ops.cast(fits, "int32"), axis=1), 1)
    found = ops.any(fits, axis=1)
    h = ops.take_along_axis(h, first, axis=1)[:, 0]
    w = ops.take_along_axis(w, first, axis=1)[:, 0]
    # Fallback: the central crop, aspect ratio clamped to `ratio`.
    in_ratio = w_img / h_img
    fallback_w = ops.where(in_ratio > ratio[1], ops.round(h_img * ratio[1]), w_img)
    fallback_h = ops.where(in_ratio < ratio[0], ops.round(w_img / ratio[0]), h_img)
    h = ops.where(found, h, fallback_h)
    w = ops.where(found, w, fallback_w)
    offsets = uniform((num_boxes, 2), seed_generator)
    top = ops.minimum(ops.floor(offsets[:, 0] * (h_img - h + 1)), h_img - h)
    left = ops.minimum(ops.floor(offsets[:, 1] * (w_img - w + 1)), w_img - w)
    top = ops.where(found, top, ops.floor((h_img - h) / 2))
    left = ops.where(found, left, ops.floor((w_img - w) / 2))
    return ops.stack([top, left, h, w], axis=1)


def _interpolation(start, length, size, pixels, reverse=None):
    """Per-crop bilinear weights `[N, size, pixels]` of `size` samples of a 1-D window.

    Sample k reads coordinate `start + (k + 0.5) * length / size - 0.5`, clamped to the image
    (torchvision's half-pixel resize without antialiasing); `reverse` flips the samples' order.
    """
    k = ops.arange(size, dtype="float32")
    step = ops.expand_dims(length / size, 1)
    coords = ops.expand_dims(start, 1) + (k + 0.5) * step - 0.5  # [N, size]
    if reverse is not None:
        coords = ops.where(ops.expand_dims(reverse, 1), ops.flip(coords, axis=1), coords)
    coords = ops.clip(coords, 0.0, pixels - 1.0)
    grid = ops.arange(pixels, dtype="float32")
    return ops.relu(1.0 - ops.abs(ops.expand_dims(coords, 2) - grid))  # the tent kernel


def random_resized_crops(images, num_crops, size, scale, seed_generator, flip=True):
    """Random resized crops (and horizontal flips) of a batch, `num_crops` per image.

    Args:
        images: `[B, H, W, C]` images with static H and W, any real dtype.
        num_crops: int, crops per image.
        size: int, output side in pixels.
        scale: `(low, high)` area fraction, see `crop_boxes`.
        seed_generator: a `keras.random.SeedGenerator`, advanced by each draw.
        flip: whether each crop is flipped horizontally with probability 0.5.
            Defaults to `True`.

    Returns:
        float32 `[num_crops, B, size, size, C]` in the images' value scale.

    Example: `random_resized_crops(x, 6, 14, (0.08, 0.3), keras.random.SeedGenerator(0))`.
    """
    check_seed_generator("seed_generator", seed_generator)
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(
            "`images` must be a batch [batch, height, width, channels] with a known height and "
            f"width; received images.shape={shape}."
        )
    height, width = shape[1], shape[2]
    batch = ops.shape(images)[0]
    n = num_crops * batch
    top, left, h, w = ops.unstack(crop_boxes(n, height, width, scale, seed_generator), axis=1)
    flipped = None
    if flip:
        flipped = uniform((n,), seed_generator) < 0.5
    rows = _interpolation(top, h, size, height)  # [n, size, H]
    cols = _interpolation(left, w, size, width, flipped)  # [n, size, W]
    rows = ops.reshape(rows, (num_crops, batch, size, height))
    cols = ops.reshape(cols, (num_crops, batch, size, width))
    images = ops.cast(images, "float32")
    out = ops.einsum("vbkh,bhwc->vbkwc", rows, images)
    return ops.einsum("vblw,vbkwc->vbklc", cols, out)
