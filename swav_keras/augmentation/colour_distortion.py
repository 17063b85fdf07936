"""SwAV's colour distortion with `keras.ops`: jitter, grayscale and blur, each per image.

torchvision's `RandomApply([ColorJitter(...)], p)`, `RandomGrayscale(p)` and a Gaussian blur
applied with probability p, as facebookresearch/swav uses them, vectorised over the batch: every
image draws its own factors, operation order and decisions. In a model a decision is a select
(`ops.where`), so shapes stay static for XLA; in tf.data (`backend_ops.tensorflow_ops()`) it
computes only the chosen images. Images are float32 `[N, H, W, C]` in [0, 1]; C is 1 or 3,
and one channel skips saturation, hue and grayscale.
"""

import math

import numpy as np

from swav_keras.augmentation.backend_ops import gathers_chosen_images, ops, uniform
from swav_keras.validation import check_seed_generator

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL.


def _gray(x):
    if x.shape[-1] == 1:
        return x
    return ops.sum(x * ops.convert_to_tensor(_GRAY_WEIGHTS, "float32"), axis=-1, keepdims=True)


def _blend(x, other, factor):
    return ops.clip(factor * x + (1.0 - factor) * other, 0.0, 1.0)


def _adjust_hue(x, delta):
    hsv = ops.image.rgb_to_hsv(x, data_format="channels_last")
    hue = ops.mod(hsv[..., :1] + delta, 1.0)
    return ops.image.hsv_to_rgb(ops.concatenate([hue, hsv[..., 1:]], axis=-1),
                                data_format="channels_last")


_OPS = {
    "brightness": lambda x, f: ops.clip(x * f, 0.0, 1.0),
    "contrast": lambda x, f: _blend(x, ops.mean(_gray(x), axis=(1, 2, 3), keepdims=True), f),
    "saturation": lambda x, f: _blend(x, _gray(x), f),
    "hue": _adjust_hue,
}


def _per_image(mask):
    return ops.reshape(mask, (-1, 1, 1, 1))


def _apply(chosen, operation, x, *arguments):
    """`operation(x, *arguments)` where `chosen` (`[N]` bool), `x` elsewhere.

    `arguments` are per-image tensors `[N, ...]`. With dynamic shapes (tf.data) only the chosen
    images are computed; otherwise the whole batch is, then selected.
    """
    if gathers_chosen_images():
        index = ops.nonzero(chosen)[0]
        taken = [ops.take(t, index, axis=0) for t in (x, *arguments)]
        return ops.scatter_update(x, ops.expand_dims(index, 1), operation(*taken))
    return ops.where(_per_image(chosen), operation(x, *arguments), x)


def _colour_jitter(x, seed_generator, amounts, probability):
    """`RandomApply([ColorJitter(**amounts)], probability)`, drawn per image."""
    if x.shape[-1] != 3:
        amounts = {k: v for k, v in amounts.items() if k in ("brightness", "contrast")}
    enabled = [name for name, amount in amounts.items() if amount > 0]
    if not enabled or probability <= 0:
        return x
    n = ops.shape(x)[0]
    factors = []
    for name in enabled:
        a = amounts[name]
        low, high = (-a, a) if name == "hue" else (max(0.0, 1.0 - a), 1.0 + a)
        factors.append(_per_image(uniform((n,), seed_generator, low, high)))
    order = ops.argsort(uniform((n, len(enabled)), seed_generator), axis=1)
    jittered = uniform((n,), seed_generator) < probability
    for step in range(len(enabled)):
        # Each jittered image takes exactly one operation per step: the masks are disjoint.
        for i, name in enumerate(enabled):
            chosen = jittered & ops.equal(order[:, step], i)
            x = _apply(chosen, _OPS[name], x, factors[i])
    return x


def _band(kernel, radius, size):
    """Per-image `[N, size, size]` matrices applying 1-D kernels `[N, taps]`, reflect padding."""
    rows = np.arange(size)[:, None] + np.arange(-radius, radius + 1)[None, :]
    rows = np.abs(rows)  # reflect at the start
    rows = np.where(rows > size - 1, 2 * (size - 1) - rows, rows)  # and at the end
    one_hot = np.eye(size, dtype="float32")[rows]  # [size, taps, size]
    return ops.einsum("nt,itj->nij", kernel, ops.convert_to_tensor(one_hot))


# Up to this side a blur axis is one banded matrix product (fast on accelerators); above, its
# cost (side squared per row) passes that of one shifted sum per tap, used instead.
_BANDED_MAX_SIDE = 64


def _blur_axis(x, kernel, radius, axis):
    """Blurs `[N, H, W, C]` along `axis` (1 or 2) with per-image kernels `[N, taps]`."""
    size = x.shape[axis]
    if size <= _BANDED_MAX_SIDE:
        equation = "nij,njwc->niwc" if axis == 1 else "nij,nhjc->nhic"
        return ops.einsum(equation, _band(kernel, radius, size), x)
    index = np.abs(np.arange(-radius, size + radius))  # reflect padding, as `_band`
    padded = ops.take(x, np.where(index > size - 1, 2 * (size - 1) - index, index), axis=axis)
    out = 0.0
    for t in range(2 * radius + 1):
        window = padded[:, t:t + size] if axis == 1 else padded[:, :, t:t + size]
        out = out + ops.reshape(kernel[:, t], (-1, 1, 1, 1)) * window
    return out


def _gaussian_blur(x, seed_generator, probability, sigma):
    """Gaussian blur with probability `probability`, sigma uniform in `sigma`, per image."""
    height, width = x.shape[1], x.shape[2]
    radius = min(math.ceil(3 * sigma[1]), height - 1, width - 1)
    if probability <= 0 or radius < 1:
        return x
    n = ops.shape(x)[0]
    sigmas = uniform((n, 1), seed_generator, sigma[0], sigma[1])
    blurred = uniform((n,), seed_generator) < probability
    taps = ops.arange(-radius, radius + 1, dtype="float32")

    def blur(x, sigmas):
        kernel = ops.exp(-0.5 * ops.square(taps / sigmas))
        kernel = kernel / ops.sum(kernel, axis=1, keepdims=True)
        return _blur_axis(_blur_axis(x, kernel, radius, 1), kernel, radius, 2)

    return _apply(blurred, blur, x, sigmas)


def colour_distortion(
    x,
    seed_generator,
    brightness=0.8,
    contrast=0.8,
    saturation=0.8,
    hue=0.2,
    jitter_probability=0.8,
    grayscale_probability=0.2,
    blur_probability=0.5,
    blur_sigma=(0.1, 2.0),
):
    """SwAV's colour pipeline on a batch: jitter (p), grayscale (p), then Gaussian blur (p).

    Jitter factors are uniform in `[max(0, 1 - a), 1 + a]` for brightness, contrast and
    saturation, the hue shift uniform in `[-hue, hue]`, and the enabled operations run in a
    random order per image (torchvision's `ColorJitter`). Grayscale keeps three channels. The
    blur is separable, truncated at `ceil(3 * blur_sigma[1])` pixels with reflect padding, one
    banded matrix product per axis (PIL's `GaussianBlur` in the original).

    Args:
        x: float32 `[N, H, W, C]` in [0, 1], static H, W and C (1 or 3).
        seed_generator: a `keras.random.SeedGenerator`, advanced by each draw.
        brightness: brightness amount (0 disables it). Defaults to `0.8`.
        contrast: contrast amount. Defaults to `0.8`.
        saturation: saturation amount, RGB only. Defaults to `0.8`.
        hue: hue amount in [0, 0.5], RGB only. Defaults to `0.2`.
        jitter_probability: probability that an image is jittered. Defaults to `0.8`.
        grayscale_probability: probability that an RGB image turns gray. Defaults to `0.2`.
        blur_probability: probability that an image is blurred. Defaults to `0.5`.
        blur_sigma: `(low, high)` blur standard deviation in pixels. Defaults to `(0.1, 2.0)`.

    Returns:
        float32 `[N, H, W, C]` in [0, 1].

    Example: `colour_distortion(x, keras.random.SeedGenerator(0), saturation=0.0, hue=0.0)`.

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020 (facebookresearch/swav, `src/multicropdataset.py`).
    """
    check_seed_generator("seed_generator", seed_generator)
    x = ops.convert_to_tensor(x, "float32")
    amounts = {"brightness": brightness, "contrast": contrast, "saturation": saturation,
               "hue": hue}
    x = _colour_jitter(x, seed_generator, amounts, jitter_probability)
    if x.shape[-1] == 3 and grayscale_probability > 0:
        gray = uniform((ops.shape(x)[0],), seed_generator)
        x = _apply(gray < grayscale_probability,
                   lambda x: ops.broadcast_to(_gray(x), ops.shape(x)), x)
    return _gaussian_blur(x, seed_generator, blur_probability, blur_sigma)
