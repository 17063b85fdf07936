"""Tests of the multi-crop augmentation: boxes, crops, colour, seeds, datasets, `fit`, errors."""


import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from swav_keras.augmentation import colour_distortion, random_resized_crops
from swav_keras.augmentation.backend_ops import tensorflow_ops
from swav_keras.augmentation.stateless_seeds import StatelessSeeds
from swav_keras.data import MultiCrop, multicrop, multicrop_dataset

PLAIN = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, grayscale_probability=0.0,
             blur_probability=0.0)


def images(batch=4, size=32, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, channels)).astype("uint8")


def small(**kwargs):
    config = dict(num_crops=(2, 3), crop_sizes=(16, 8), min_scales=(0.3, 0.05),
                  max_scales=(1.0, 0.3))
    config.update(kwargs)
    return MultiCrop(**config)


def numpy(crops):
    return [np.asarray(c) for c in crops]


def test_shapes_counts_and_group_order():
    crops = small(seed=0)(images(batch=5))
    assert [tuple(c.shape) for c in crops] == [(5, 16, 16, 3)] * 2 + [(5, 8, 8, 3)] * 3
    assert all(c.dtype == tf.float32 for c in crops)
    low_first = MultiCrop((1, 2), (6, 12), (0.1, 0.5), (0.3, 1.0), seed=0)(images())
    assert [c.shape[1] for c in low_first] == [6, 12, 12]
    assert small().num_views == 5


@pytest.mark.parametrize("flip", [False, True])
def test_crop_and_resize_reads_the_crops_of_the_layers_interpolation(flip):
    # The tf.data sampler (a gather) and the layer's interpolation matrices: same draws, same
    # sample coordinates, so the same crops, upsampled and downsampled, on non-square images.
    x = np.random.default_rng(1).integers(0, 256, (3, 20, 26, 3)).astype("uint8")
    for size, scale in [(7, (0.3, 1.0)), (32, (0.05, 0.3))]:
        with tensorflow_ops():  # TensorFlow's numbers for both, on every backend
            padded = multicrop._edge_padded(x)
            sampled = multicrop._resized_crops(padded, 4, size, scale, seeds(), flip).numpy()
            interpolated = random_resized_crops(x, 4, size, scale, seeds(), flip)
        interpolated = np.asarray(interpolated).reshape(sampled.shape)
        np.testing.assert_allclose(sampled, interpolated, atol=2e-3)


def seeds(seed=(3, 4)):
    return StatelessSeeds(tf.constant(seed, tf.int64))


@pytest.mark.parametrize("channels", [1, 3])
def test_tf_data_computes_only_chosen_images_and_gets_the_same_colours(channels, monkeypatch):
    # In tf.data a per-image choice gathers the chosen images; in the model it selects over
    # the batch. Both give the same values; a choice of no image leaves the batch unchanged.
    x = np.random.default_rng(2).uniform(0, 1, (64, 12, 12, channels)).astype("float32")
    with tensorflow_ops():  # TensorFlow's numbers for both, on every backend
        gathered = colour_distortion(x, seeds(), hue=0.4).numpy()
        untouched = colour_distortion(x, seeds(), jitter_probability=1e-9,
                                      grayscale_probability=1e-9, blur_probability=1e-9)
        module = sys.modules[colour_distortion.__module__]
        monkeypatch.setattr(module, "gathers_chosen_images", lambda: False)
        selected = colour_distortion(x, seeds(), hue=0.4).numpy()
    np.testing.assert_allclose(gathered, selected, atol=1e-6)
    assert np.abs(gathered - x).max() > 0.1
    np.testing.assert_array_equal(untouched.numpy(), x)


def test_each_crop_of_each_image_is_drawn_independently():
    same = np.repeat(images(batch=1, size=24), 8, axis=0)
    for crop in numpy(small(seed=0)(same)):
        flat = crop.reshape(8, -1)
        distances = np.abs(flat[:, None] - flat[None]).sum(-1)
        assert (distances[~np.eye(8, dtype=bool)] > 0).all()
    crops = numpy(small(seed=0)(same))
    assert not np.array_equal(crops[0], crops[1])


def test_seeds_make_crops_reproducible():
    x = images()
    first, again = numpy(small(seed=7)(x)), numpy(small(seed=7)(x))
    other = numpy(small(seed=8)(x))
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    explicit = numpy(small()(x, seed=[5, 6]))
    np.testing.assert_array_equal(explicit[2], numpy(small(seed=1)(x, seed=[5, 6]))[2])
    fresh = [numpy(small()(x))[0] for _ in range(2)]
    assert not np.array_equal(*fresh)


@pytest.mark.parametrize("channels", [1, 3])
def test_range_dtype_and_channels(channels):
    x = images(batch=16, channels=channels)
    for crop in small(seed=0, hue=0.5)(x):
        crop = np.asarray(crop)
        assert crop.dtype == np.float32 and crop.shape[-1] == channels
        assert crop.min() >= 0.0 and crop.max() <= 255.0 and crop.max() > 200.0
    # Raw pixel scale in, raw pixel scale out; uint8 and float inputs agree.
    white = np.full((2, 10, 10, channels), 255, "uint8")
    for crop in small(seed=0, **PLAIN)(white):
        np.testing.assert_allclose(np.asarray(crop), 255.0, atol=1e-3)
    as_float = numpy(small(seed=3)(x.astype("float32")))
    for a, b in zip(numpy(small(seed=3)(x)), as_float, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


def fashion_like(n=40, size=20):
    return tf.data.Dataset.from_tensor_slices(
        (images(batch=n, size=size, channels=1), np.arange(n, dtype="int64"))
    )


def as_lists(dataset):
    return [numpy(element[0]) for element in dataset]


def test_dataset_elements_batches_and_determinism():
    ds = multicrop_dataset(fashion_like(), small(), batch_size=8, seed=1)
    (crops,) = ds.element_spec
    assert [tuple(c.shape) for c in crops] == [(8, 16, 16, 1)] * 2 + [(8, 8, 8, 1)] * 3
    epoch1, epoch2 = as_lists(ds), as_lists(ds)
    assert len(epoch1) == 5
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # epochs differ
    again = as_lists(multicrop_dataset(fashion_like(), small(), batch_size=8, seed=1))
    serial = multicrop_dataset(fashion_like(), small(), batch_size=8, seed=1)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    for other in (again, as_lists(serial.with_options(options))):
        for a, b in zip(epoch1, other, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
    different = as_lists(multicrop_dataset(fashion_like(), small(), batch_size=8, seed=2))
    assert not np.array_equal(epoch1[0][0], different[0][0])


def test_dataset_inputs_remainder_and_repeat():
    plain = np.asarray(images(batch=10, size=12, channels=1))[..., 0]  # [N, H, W] array
    assert len(as_lists(multicrop_dataset(plain, small(), 4))) == 2
    kept = as_lists(multicrop_dataset(plain, small(), 4, drop_remainder=False))
    assert [len(b[0]) for b in kept] == [4, 4, 2]
    endless = multicrop_dataset(plain, small(), 4, repeat=True, shuffle_buffer=0)
    assert len(as_lists(endless.take(7))) == 7
    dicts = tf.data.Dataset.from_tensor_slices({"image": images(batch=6), "label": np.zeros(6)})
    assert len(as_lists(multicrop_dataset(dicts, small(), 3))) == 2


def test_dataset_of_images_of_different_sizes():
    sizes = [(40, 30), (18, 50), (33, 33), (60, 20)] * 2

    def generate():
        for i, (h, w) in enumerate(sizes):
            yield np.full((h, w, 3), 10 * i, "uint8")

    spec = tf.TensorSpec((None, None, 3), tf.uint8)
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    make = lambda: multicrop_dataset(ds, small(**PLAIN), 4, shuffle_buffer=0, seed=3)  # noqa: E731
    batches = as_lists(make())
    assert [b[0].shape for b in batches] == [(4, 16, 16, 3)] * 2
    assert [b[4].shape for b in batches] == [(4, 8, 8, 3)] * 2
    # Plain crops of constant images keep each image's value, in dataset order.
    np.testing.assert_allclose(batches[1][3][:, 0, 0, 0], [40, 50, 60, 70], atol=1e-3)
    for a, b in zip(batches[0], as_lists(make())[0], strict=True):
        np.testing.assert_array_equal(a, b)


class MeanOfCrops(keras.Model):
    """A model whose loss is the mean of its (squared) outputs over all crops."""

    def __init__(self):
        super().__init__()
        self.rescale = keras.layers.Rescaling(1 / 255)  # raw pixels in, as the real encoder
        self.conv = keras.layers.Conv2D(4, 3)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(1)

    def call(self, crops):
        features = [self.pool(self.conv(self.rescale(c))) for c in crops]
        return keras.ops.concatenate([self.dense(f) for f in features], 0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean(keras.ops.square(y_pred - 1.0))


def test_dataset_feeds_fit_on_the_active_backend():
    keras.utils.set_random_seed(0)
    model = MeanOfCrops()
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    ds = multicrop_dataset(fashion_like(n=16), small(), batch_size=8, seed=0)
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert len(losses) == 2 and np.isfinite(losses).all() and losses[1] < losses[0]


def test_config_round_trip():
    multicrop = small(seed=3, jitter_strength=0.5, flip=False)
    config = multicrop.get_config()
    assert config["num_crops"] == (2, 3) and config["seed"] == 3 and config["flip"] is False
    assert MultiCrop.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(multicrop))
    assert isinstance(restored, MultiCrop) and restored.get_config()["max_scales"] == (1.0, 0.3)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(crop_sizes=(224,)), ValueError,
         "`crop_sizes` must have one entry per group of `num_crops` (2); "
         "received crop_sizes=(224,)."),
        (dict(min_scales=(0.14,)), ValueError,
         "`min_scales` must have one entry per group of `num_crops` (2); "
         "received min_scales=(0.14,)."),
        (dict(max_scales=(1.0, 0.14, 0.1)), ValueError,
         "`max_scales` must have one entry per group of `num_crops` (2); "
         "received max_scales=(1.0, 0.14, 0.1)."),
        (dict(max_scales=(1.5, 0.14)), ValueError,
         "`max_scales` must hold numbers in (0, 1]; received max_scales=(1.5, 0.14)."),
        (dict(min_scales=(0.0, 0.05)), ValueError,
         "`min_scales` must hold numbers in (0, 1]; received min_scales=(0.0, 0.05)."),
        (dict(min_scales=(0.14, 0.5)), ValueError,
         "`min_scales` must not exceed `max_scales` in any group; "
         "received min_scales=(0.14, 0.5), max_scales=(1.0, 0.14)."),
        (dict(min_scales="small"), TypeError,
         "`min_scales` must be a sequence of numbers; received min_scales='small'."),
        (dict(crop_sizes=(224, 0)), ValueError,
         "`crop_sizes` must hold integers >= 1; received crop_sizes=(224, 0)."),
        (dict(num_crops=(2, -1)), ValueError,
         "`num_crops` must hold integers >= 1; received num_crops=(2, -1)."),
        (dict(num_crops=()), ValueError,
         "`num_crops` must hold at least 1 integer(s); received num_crops=()."),
        (dict(jitter_probability=1.5), ValueError,
         "`jitter_probability` must be <= 1.0; received jitter_probability=1.5."),
        (dict(brightness=-0.1), ValueError,
         "`brightness` must be >= 0.0; received brightness=-0.1."),
        (dict(hue=0.3, jitter_strength=2.0), ValueError,
         "`hue` times `jitter_strength` must be <= 0.5; received hue=0.3, jitter_strength=2.0."),
        (dict(blur_sigma=(2.0, 0.1)), ValueError,
         "`blur_sigma` must be a (low, high) pair of positive numbers with low <= high; "
         "received blur_sigma=(2.0, 0.1)."),
        (dict(flip=1), TypeError, "`flip` must be a bool; received flip=1."),
        (dict(seed=-1), ValueError, "`seed` must be an integer >= 0; received seed=-1."),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        MultiCrop(**kwargs)
    assert str(info.value) == message


def test_bad_call_and_dataset_arguments():
    with pytest.raises(ValueError) as info:
        small()(np.zeros((8, 8, 3), "uint8"))
    assert str(info.value) == (
        "`images` must be a batch [batch, height, width, channels] with 1 or 3 channels; "
        "received images.shape=(8, 8, 3)."
    )
    with pytest.raises(ValueError) as info:
        small()(np.zeros((2, 8, 8, 4), "uint8"))
    assert str(info.value).endswith("received images.shape=(2, 8, 8, 4).")
    with pytest.raises(ValueError) as info:
        multicrop_dataset(fashion_like(), small(), batch_size=0)
    assert str(info.value) == "`batch_size` must be a positive integer; received batch_size=0."
    with pytest.raises(TypeError) as info:
        multicrop_dataset(fashion_like(), "multicrop", batch_size=8)
    assert str(info.value) == "`multicrop` must be a MultiCrop; received multicrop='multicrop'."
