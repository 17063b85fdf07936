"""Golden tests of `colour_distortion` (keras.ops) against NumPy, on the active backend."""

import colorsys

import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.augmentation import colour_distortion

OFF = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, jitter_probability=1.0,
           grayscale_probability=0.0, blur_probability=0.0)
GRAY = np.array([0.299, 0.587, 0.114])


def batch(n=6, size=5, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, channels)).astype("float32")


def run(x, seed, **kwargs):
    args = dict(OFF, **kwargs)
    return keras.ops.convert_to_numpy(
        colour_distortion(x, keras.random.SeedGenerator(seed), **args))


def draws(seed, n, *ranges):
    """Replays the generator: one uniform per image per enabled operation, then the order."""
    generator = keras.random.SeedGenerator(seed)
    factors = [keras.ops.convert_to_numpy(keras.random.uniform((n,), lo, hi, seed=generator))
               for lo, hi in ranges]
    order = keras.random.uniform((n, len(ranges)), seed=generator)
    return factors, np.argsort(keras.ops.convert_to_numpy(order), axis=1)


def np_gray(x):
    return (x * GRAY).sum(-1, keepdims=True) if x.shape[-1] == 3 else x


def np_hue(x, delta):
    out = np.empty_like(x, dtype="float64")
    for index in np.ndindex(x.shape[:-1]):
        h, s, v = colorsys.rgb_to_hsv(*x[index])
        out[index] = colorsys.hsv_to_rgb((h + delta) % 1.0, s, v)
    return out


NP_OPS = {
    "brightness": lambda x, f: np.clip(x * f, 0, 1),
    "contrast": lambda x, f: np.clip(f * x + (1 - f) * np_gray(x).mean(), 0, 1),
    "saturation": lambda x, f: np.clip(f * x + (1 - f) * np_gray(x), 0, 1),
    "hue": np_hue,
}


@pytest.mark.parametrize("name,amount", [("brightness", 0.8), ("contrast", 0.8),
                                         ("saturation", 0.8), ("hue", 0.4)])
def test_each_jitter_operation_matches_numpy(name, amount):
    x = batch()
    low, high = (-amount, amount) if name == "hue" else (max(0.0, 1 - amount), 1 + amount)
    (factors,), _ = draws(11, len(x), (low, high))
    expected = np.stack([NP_OPS[name](image, f) for image, f in zip(x, factors, strict=True)])
    np.testing.assert_allclose(run(x, 11, **{name: amount}), expected, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_runs_operations_in_a_random_order_per_image(channels):
    x = batch(n=32, channels=channels)
    amounts = {"brightness": 0.8, "contrast": 0.8}
    if channels == 3:
        amounts.update(saturation=0.8, hue=0.3)
    ranges = [(-a, a) if k == "hue" else (1 - a, 1 + a) for k, a in amounts.items()]
    factors, order = draws(4, len(x), *ranges)
    assert len({tuple(o) for o in order}) >= 2  # several orders occur
    names = list(amounts)
    expected = []
    for i, image in enumerate(x):
        for step in order[i]:
            image = NP_OPS[names[step]](image, factors[step][i])
        expected.append(image)
    np.testing.assert_allclose(run(x, 4, **amounts), np.stack(expected), atol=1e-4)


def test_grayscale_keeps_three_equal_channels_and_skips_one_channel():
    x = batch()
    gray = run(x, 0, grayscale_probability=1.0)
    np.testing.assert_allclose(gray, np.repeat(np_gray(x), 3, axis=-1), atol=1e-6)
    single = batch(channels=1)
    np.testing.assert_array_equal(run(single, 0, grayscale_probability=1.0, hue=0.5,
                                      saturation=0.8), single)


@pytest.mark.parametrize("size", [9, 70])  # a banded matrix product; shifted sums above 64
def test_blur_matches_numpy_reference(size):
    x = batch(n=4, size=size, channels=2)
    sigma = 1.3
    blurred = run(x, 2, blur_probability=1.0, blur_sigma=(sigma, sigma))
    taps = np.arange(-4, 5)  # radius ceil(3 * 1.3) = 4
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel = np.tile(kernel / kernel.sum(), (4, 1))
    np.testing.assert_allclose(blurred, ref.separable_blur(x, kernel), atol=1e-5)
    flat = np.full((3, 6, 6, 1), 0.25, "float32")  # radius clipped to the side minus one
    np.testing.assert_allclose(run(flat, 2, blur_probability=1.0), flat, atol=1e-6)


def test_probabilities_are_per_image():
    n = 2000
    x = batch(n=n, size=4)
    jittered = np.abs(run(x, 1, brightness=0.8, jitter_probability=0.8) - x).max((1, 2, 3)) > 0
    grayed = np.ptp(run(x, 2, grayscale_probability=0.2), axis=-1).max((1, 2)) < 1e-6
    blurred = run(x, 3, blur_probability=0.5, blur_sigma=(1.0, 2.0))
    blurred = np.abs(blurred - x).max((1, 2, 3)) > 1e-4
    for observed, p in ((jittered, 0.8), (grayed, 0.2), (blurred, 0.5)):
        assert abs(observed.mean() - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_values_stay_in_unit_range():
    x = batch(n=64, size=8)
    out = run(x, 9, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.5,
              jitter_probability=1.0, grayscale_probability=0.2, blur_probability=0.5)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert np.abs(out - x).max() > 0.1


def test_seed_generator_is_required():
    with pytest.raises(TypeError, match="`seed_generator` must be a keras.random.SeedGenerator; "
                                        "received seed_generator of type NoneType."):
        colour_distortion(batch(), None)
