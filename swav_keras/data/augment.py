"""Batched, stateless image augmentations behind `MultiCrop`.

Every function draws its randomness per image from stateless ops (`tf.random.stateless_*`)
seeded by a shape-`[2]` int tensor, and works on a whole batch at once: per-image boxes go to
one `tf.image.crop_and_resize`, per-image decisions are masks (`tf.where`) or partitions of
the batch (`tf.dynamic_partition`, so skipped images cost nothing), and per-image blur kernels
run as batched matrix products or one depthwise convolution. Colour functions take and return
float32 images in [0, 1]; C is 1 or 3 (one channel skips saturation, hue and grayscale).
The semantics follow torchvision's `RandomResizedCrop`, `ColorJitter`, `RandomGrayscale` and
`GaussianBlur`, as used by facebookresearch/swav.
"""

import math

import numpy as np
import tensorflow as tf

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL.


def _uniform(seed, shape, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def sample_crop_boxes(seed, num_boxes, height, width, scale, ratio=(3 / 4, 4 / 3), attempts=10):
    """Samples `RandomResizedCrop` boxes: integer `(top, left, height, width)` per box.

    torchvision's algorithm, vectorised: each box tries `attempts` draws of an area fraction
    uniform in `scale` and an aspect ratio (width / height) log-uniform in `ratio`, rounds the
    sides and keeps the first draw that fits in the image, at a uniform position. When none
    fits, the box is the central crop of the whole image with its aspect clamped to `ratio`.

    Args:
        seed: shape-`[2]` int seed.
        num_boxes: number of boxes (int or scalar tensor).
        height: image height in pixels (int or scalar tensor).
        width: image width in pixels (int or scalar tensor).
        scale: `(low, high)` area fraction of the image.
        ratio: `(low, high)` aspect ratio. Defaults to `(3 / 4, 4 / 3)`.
        attempts: draws per box before the fallback. Defaults to `10`.

    Returns:
        int32 tensor `[num_boxes, 4]`: top, left, height, width in pixels.

    Example: `sample_crop_boxes([0, 1], 8, 28, 28, scale=(0.08, 1.0))`.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    h_img = tf.cast(height, tf.float32)
    w_img = tf.cast(width, tf.float32)
    area = h_img * w_img * _uniform(seeds[0], [num_boxes, attempts], scale[0], scale[1])
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(_uniform(seeds[1], [num_boxes, attempts], log_ratio[0], log_ratio[1]))
    w = tf.round(tf.sqrt(area * aspect))
    h = tf.round(tf.sqrt(area / aspect))
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.reduce_any(fits, axis=1)
    h = tf.gather(h, first, axis=1, batch_dims=1)
    w = tf.gather(w, first, axis=1, batch_dims=1)
    # Fallback: central crop, aspect ratio clamped to `ratio`.
    in_ratio = w_img / h_img
    fallback_w = tf.where(in_ratio > ratio[1], tf.round(h_img * ratio[1]), w_img)
    fallback_h = tf.where(in_ratio < ratio[0], tf.round(w_img / ratio[0]), h_img)
    h = tf.where(found, h, fallback_h)
    w = tf.where(found, w, fallback_w)
    offsets = _uniform(seeds[2], [num_boxes, 2])
    top = tf.minimum(tf.floor(offsets[:, 0] * (h_img - h + 1)), h_img - h)
    left = tf.minimum(tf.floor(offsets[:, 1] * (w_img - w + 1)), w_img - w)
    top = tf.where(found, top, tf.floor((h_img - h) / 2))
    left = tf.where(found, left, tf.floor((w_img - w) / 2))
    return tf.cast(tf.stack([top, left, h, w], axis=1), tf.int32)


def resized_crops(images, seed, num_crops, size, scale, flip=True):
    """Random resized crops (and flips) of a batch, `num_crops` per image.

    Bilinear sampling at half-pixel centres, as torchvision's resize (without antialiasing),
    clamped to the image border. Flipping swaps the box's horizontal ends, at no cost.

    Args:
        images: `[B, H, W, C]` images, any real dtype.
        seed: shape-`[2]` int seed.
        num_crops: crops per image.
        size: output side in pixels.
        scale: `(low, high)` area fraction, see `sample_crop_boxes`.
        flip: whether each crop is flipped horizontally with probability 0.5.
            Defaults to `True`.

    Returns:
        float32 `[num_crops * B, size, size, C]` in the images' value scale; crop `v` of image
        `b` is row `v * B + b`.
    """
    batch = tf.shape(images)[0]
    h_img = tf.cast(tf.shape(images)[1], tf.float32)
    w_img = tf.cast(tf.shape(images)[2], tf.float32)
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    boxes = tf.cast(sample_crop_boxes(box_seed, num_crops * batch, h_img, w_img, scale),
                    tf.float32)
    top, left, h, w = tf.unstack(boxes, axis=1)
    # Sample k in [0, size) reads pixel coordinate top + (k + 0.5) * h / size - 0.5.
    y1 = tf.clip_by_value(top + 0.5 * h / size - 0.5, 0.0, h_img - 1)
    y2 = tf.clip_by_value(top + h - 0.5 * h / size - 0.5, 0.0, h_img - 1)
    x1 = tf.clip_by_value(left + 0.5 * w / size - 0.5, 0.0, w_img - 1)
    x2 = tf.clip_by_value(left + w - 0.5 * w / size - 0.5, 0.0, w_img - 1)
    if flip:
        flipped = _uniform(flip_seed, [num_crops * batch]) < 0.5
        x1, x2 = tf.where(flipped, x2, x1), tf.where(flipped, x1, x2)
    y_den = tf.maximum(h_img - 1, 1.0)
    x_den = tf.maximum(w_img - 1, 1.0)
    norm_boxes = tf.stack([y1 / y_den, x1 / x_den, y2 / y_den, x2 / x_den], axis=1)
    indices = tf.tile(tf.range(batch), [num_crops])
    return tf.image.crop_and_resize(images, norm_boxes, indices, [size, size])


def _gray(x):
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(_GRAY_WEIGHTS, x.dtype), axis=-1, keepdims=True)


def _blend(x, other, factor):
    return tf.clip_by_value(factor * x + (1.0 - factor) * other, 0.0, 1.0)


def _adjust_hue(x, delta):
    hsv = tf.image.rgb_to_hsv(x)
    hue = tf.math.floormod(hsv[..., :1] + delta, 1.0)
    return tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1))


_OPS = {
    "brightness": lambda x, f: tf.clip_by_value(x * f, 0.0, 1.0),
    "contrast": lambda x, f: _blend(x, tf.reduce_mean(_gray(x), [1, 2, 3], True), f),
    "saturation": lambda x, f: _blend(x, _gray(x), f),
    "hue": _adjust_hue,
}


def color_jitter(x, seed, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                 probability=1.0):
    """torchvision's `RandomApply([ColorJitter(...)], p)`, drawn per image.

    Factors are uniform in `[max(0, 1 - a), 1 + a]` for brightness, contrast and saturation,
    the hue shift uniform in `[-hue, hue]`; the enabled operations run in a random order per
    image. Each step partitions the batch by the operation its images take at that step
    (`tf.dynamic_partition`), so every operation runs once per image, and images that are not
    jittered are not touched.

    Args:
        x: float32 `[N, H, W, C]` in [0, 1], C = 1 or 3.
        seed: shape-`[2]` int seed.
        brightness: brightness amount. Defaults to `0.0`.
        contrast: contrast amount. Defaults to `0.0`.
        saturation: saturation amount, RGB only. Defaults to `0.0`.
        hue: hue amount in [0, 0.5], RGB only. Defaults to `0.0`.
        probability: probability that an image is jittered at all. Defaults to `1.0`.

    Returns:
        float32 `[N, H, W, C]` in [0, 1].

    Example: `color_jitter(x, [0, 1], brightness=0.4, contrast=0.4, probability=0.8)`.
    """
    amounts = {"brightness": brightness, "contrast": contrast}
    if x.shape[-1] == 3:
        amounts.update(saturation=saturation, hue=hue)
    enabled = [name for name, amount in amounts.items() if amount > 0]
    if not enabled or probability <= 0:
        return x
    k = len(enabled)
    shape, n = x.shape, tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, k + 2)
    factors = []
    for i, name in enumerate(enabled):
        a = amounts[name]
        low, high = (-a, a) if name == "hue" else (max(0.0, 1.0 - a), 1.0 + a)
        factors.append(_uniform(seeds[i], [n], low, high))
    factors = tf.stack(factors, axis=1)  # [N, k]
    order = tf.argsort(_uniform(seeds[k], [n, k]), axis=1)  # a permutation per image
    jittered = _uniform(seeds[k + 1], [n]) < probability
    positions = tf.range(n)
    for step in range(k):
        # Operation of each image at this step; k (no operation) for images not jittered.
        which = tf.where(jittered, order[:, step], k)
        parts = tf.dynamic_partition(x, which, k + 1)
        part_factors = tf.dynamic_partition(factors, which, k + 1)
        results = [
            _OPS[name](parts[i], tf.reshape(part_factors[i][:, i], [-1, 1, 1, 1]))
            for i, name in enumerate(enabled)
        ]
        x = tf.dynamic_stitch(tf.dynamic_partition(positions, which, k + 1), results + parts[k:])
    return tf.ensure_shape(x, shape)


def random_grayscale(x, seed, probability):
    """torchvision's `RandomGrayscale(p)` per image; one-channel images are returned as is."""
    if x.shape[-1] != 3 or probability <= 0:
        return x
    apply = tf.reshape(_uniform(seed, [tf.shape(x)[0]]) < probability, [-1, 1, 1, 1])
    return tf.where(apply, tf.broadcast_to(_gray(x), tf.shape(x)), x)


def _band(kernel, radius, size):
    """Per-image `[M, size, size]` matrices applying 1-D kernels with reflect padding."""
    rows = np.arange(size)[:, None] + np.arange(-radius, radius + 1)[None, :]
    rows = np.abs(rows)  # reflect at the start
    rows = np.where(rows > size - 1, 2 * (size - 1) - rows, rows)  # and at the end
    return tf.einsum("mt,itj->mij", kernel, tf.one_hot(rows, size))


def _separable_blur(x, kernel, radius):
    """Blurs `[M, H, W, C]` with per-image 1-D kernels `[M, taps]` along both axes."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if max(height, width) <= 64:  # small crops: one batched matmul per axis is fastest
        x = tf.einsum("mij,mjwc->miwc", _band(kernel, radius, height), x)
        return tf.einsum("mij,mhjc->mhic", _band(kernel, radius, width), x)

    # Large crops: the batch as channels of one image, one depthwise convolution per axis.
    def convolve():
        m = tf.shape(x)[0]
        taps = tf.transpose(tf.repeat(kernel, channels, axis=0))  # [taps, M * C]
        y = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, m * channels])
        y = tf.pad(y, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
        y = tf.nn.depthwise_conv2d(y, taps[:, None, :, None], [1, 1, 1, 1], "VALID")
        y = tf.nn.depthwise_conv2d(y, taps[None, :, :, None], [1, 1, 1, 1], "VALID")
        return tf.transpose(tf.reshape(y, [height, width, m, channels]), [2, 0, 1, 3])

    return tf.cond(tf.shape(x)[0] > 0, convolve, lambda: x)  # MirrorPad rejects empty input


def gaussian_blur(x, seed, probability, sigma=(0.1, 2.0)):
    """Gaussian blur with probability `probability`, sigma uniform in `sigma`, per image.

    Separable kernels truncated at `ceil(3 * sigma[1])` pixels (at most the image side minus
    one), reflect padding. Only the images drawn for blurring are computed, each with its own
    kernel: as banded matrices (one batched matmul per axis) for sides up to 64 pixels, else
    as one depthwise convolution per axis with the batch laid out as channels.

    Args:
        x: float32 `[N, H, W, C]`, static H, W and C.
        seed: shape-`[2]` int seed.
        probability: probability that an image is blurred.
        sigma: `(low, high)` standard deviation range in pixels. Defaults to `(0.1, 2.0)`.

    Returns:
        float32 `[N, H, W, C]`.

    Example: `gaussian_blur(x, [0, 1], probability=0.5)`.
    """
    radius = min(math.ceil(3 * sigma[1]), x.shape[1] - 1, x.shape[2] - 1)
    if probability <= 0 or radius < 1:
        return x
    n = tf.shape(x)[0]
    sigma_seed, apply_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    which = tf.cast(_uniform(apply_seed, [n]) < probability, tf.int32)
    kept, blurred = tf.dynamic_partition(x, which, 2)
    sigmas = tf.dynamic_partition(_uniform(sigma_seed, [n, 1], sigma[0], sigma[1]), which, 2)[1]
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigmas))
    kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)
    blurred = _separable_blur(blurred, kernel, radius)
    positions = tf.dynamic_partition(tf.range(n), which, 2)
    return tf.ensure_shape(tf.dynamic_stitch(positions, [kept, blurred]), x.shape)


def colour_distortion(x, seed, brightness, contrast, saturation, hue, jitter_probability,
                      grayscale_probability, blur_probability, blur_sigma):
    """SwAV's colour pipeline: jitter (p), grayscale (p), then Gaussian blur (p).

    Args and semantics as `color_jitter`, `random_grayscale` and `gaussian_blur`; `x` is
    float32 `[N, S, S, C]` in [0, 1] and so is the result.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    x = color_jitter(x, seeds[0], brightness, contrast, saturation, hue, jitter_probability)
    x = random_grayscale(x, seeds[1], grayscale_probability)
    return gaussian_blur(x, seeds[2], blur_probability, blur_sigma)
