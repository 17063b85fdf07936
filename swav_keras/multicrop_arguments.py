"""The arguments of SwAV's multi-crop augmentation, checked once for its two front ends.

`swav_keras.data.MultiCrop` (tf.data, on the host) and `swav_keras.layers.MultiCropAugmentation`
(a Keras layer, on any backend and device) run the same `swav_keras.augmentation` functions with
the same arguments; this module validates and names them once. It imports no backend.
"""

import numbers

from swav_keras.validation import check_float, check_int, check_int_sequence

ARGUMENT_NAMES = (
    "num_crops", "crop_sizes", "min_scales", "max_scales", "jitter_strength", "brightness",
    "contrast", "saturation", "hue", "jitter_probability", "grayscale_probability",
    "blur_probability", "blur_sigma", "flip", "seed",
)


def _check_scales(name, value, num_groups):
    """Returns `value` as a tuple of floats in (0, 1], one per resolution group."""
    items = tuple(value) if hasattr(value, "__iter__") and not isinstance(value, str) else None
    if items is None or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in items):
        raise TypeError(f"`{name}` must be a sequence of numbers; received {name}={value!r}.")
    if len(items) != num_groups:
        raise ValueError(
            f"`{name}` must have one entry per group of `num_crops` ({num_groups}); "
            f"received {name}={value!r}."
        )
    if not all(0.0 < v <= 1.0 for v in items):
        raise ValueError(f"`{name}` must hold numbers in (0, 1]; received {name}={value!r}.")
    return tuple(float(v) for v in items)


def check_multicrop_arguments(
    num_crops, crop_sizes, min_scales, max_scales, jitter_strength, brightness, contrast,
    saturation, hue, jitter_probability, grayscale_probability, blur_probability, blur_sigma,
    flip, seed,
):
    """Returns the multi-crop arguments as a dict of checked, normalised values.

    See `swav_keras.data.MultiCrop` for their meaning. Raises a `TypeError` or `ValueError`
    naming the argument and the value received.
    """
    num_crops = check_int_sequence("num_crops", num_crops, minimum=1)
    groups = len(num_crops)
    sizes = check_int_sequence("crop_sizes", crop_sizes, minimum=1)
    if len(sizes) != groups:
        raise ValueError(
            f"`crop_sizes` must have one entry per group of `num_crops` ({groups}); "
            f"received crop_sizes={crop_sizes!r}."
        )
    lows = _check_scales("min_scales", min_scales, groups)
    highs = _check_scales("max_scales", max_scales, groups)
    if any(lo > hi for lo, hi in zip(lows, highs, strict=True)):
        raise ValueError(
            "`min_scales` must not exceed `max_scales` in any group; "
            f"received min_scales={min_scales!r}, max_scales={max_scales!r}."
        )
    checked = {"num_crops": num_crops, "crop_sizes": sizes, "min_scales": lows, "max_scales": highs}
    checked["jitter_strength"] = check_float("jitter_strength", jitter_strength, minimum=0.0)
    for name, value in (("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation), ("hue", hue)):
        checked[name] = check_float(name, value, minimum=0.0)
    if checked["hue"] * checked["jitter_strength"] > 0.5:
        raise ValueError(
            "`hue` times `jitter_strength` must be <= 0.5; "
            f"received hue={hue!r}, jitter_strength={jitter_strength!r}."
        )
    for name, value in (
        ("jitter_probability", jitter_probability),
        ("grayscale_probability", grayscale_probability),
        ("blur_probability", blur_probability),
    ):
        checked[name] = check_float(name, value, minimum=0.0, maximum=1.0)
    sigma = tuple(blur_sigma) if isinstance(blur_sigma, (tuple, list)) else ()
    if not (
        len(sigma) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in sigma)
        and 0 < sigma[0] <= sigma[1] < float("inf")
    ):
        raise ValueError(
            "`blur_sigma` must be a (low, high) pair of positive numbers with low <= high; "
            f"received blur_sigma={blur_sigma!r}."
        )
    checked["blur_sigma"] = (float(sigma[0]), float(sigma[1]))
    if not isinstance(flip, bool):
        raise TypeError(f"`flip` must be a bool; received flip={flip!r}.")
    checked["flip"] = flip
    checked["seed"] = None if seed is None else check_int("seed", seed, minimum=0)
    return checked


def colour_arguments(multicrop):
    """The keyword arguments of the colour distortion of a `MultiCrop` or
    `MultiCropAugmentation`: the jitter amounts scaled by `jitter_strength`, and the rest."""
    strength = multicrop.jitter_strength
    return dict(
        brightness=multicrop.brightness * strength,
        contrast=multicrop.contrast * strength,
        saturation=multicrop.saturation * strength,
        hue=multicrop.hue * strength,
        jitter_probability=multicrop.jitter_probability,
        grayscale_probability=multicrop.grayscale_probability,
        blur_probability=multicrop.blur_probability,
        blur_sigma=multicrop.blur_sigma,
    )
