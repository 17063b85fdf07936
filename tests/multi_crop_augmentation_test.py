"""Tests of `MultiCropAugmentation` and of SwAV trained with it, on the active backend."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from backend_runs import UNDER_JAX_AND_TORCH
from no_tensorflow import run_without_tensorflow

import swav_keras
from swav_keras import backends
from swav_keras.backbones import SmallResNet
from swav_keras.data import ImageBatches, MultiCrop
from swav_keras.layers import MultiCropAugmentation

SMALL = dict(num_crops=(2, 3), crop_sizes=(16, 8), min_scales=(0.3, 0.05), max_scales=(1.0, 0.3))


def images(batch=4, size=24, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, channels)).astype(
        "uint8")


def crops_of(layer, x):
    return [keras.ops.convert_to_numpy(c) for c in layer(x)]


@pytest.mark.parametrize("channels", [1, 3])
def test_views_shapes_dtype_and_range(channels):
    layer = MultiCropAugmentation(**SMALL, seed=0)
    crops = crops_of(layer, images(batch=8, channels=channels))
    assert layer.num_views == 5
    assert [c.shape for c in crops] == [(8, 16, 16, channels)] * 2 + [(8, 8, 8, channels)] * 3
    for c in crops:
        assert c.dtype == np.float32 and c.min() >= 0.0 and c.max() <= 255.0 + 1e-3
        assert c.max() > 150.0  # raw pixel scale out
    assert layer.compute_output_shape((None, 24, 24, channels)) == (
        ((None, 16, 16, channels),) * 2 + ((None, 8, 8, channels),) * 3)


def test_seed_gives_the_same_sequence_and_calls_differ():
    x = images()
    first, again = MultiCropAugmentation(**SMALL, seed=7), MultiCropAugmentation(**SMALL, seed=7)
    a, b = crops_of(first, x), crops_of(again, x)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    later = crops_of(first, x)
    assert not np.array_equal(a[0], later[0])  # the generator advances
    other = crops_of(MultiCropAugmentation(**SMALL, seed=8), x)
    assert not np.array_equal(a[0], other[0])


def test_each_replica_draws_its_own_crops(monkeypatch):
    """Replicas holding identical generator states draw different crops, each reproducibly."""
    x = images()
    first = MultiCropAugmentation(**SMALL, seed=7)
    plain = crops_of(first, x)
    monkeypatch.setattr(backends.active(), "replica_index", lambda: 1)
    layers = [MultiCropAugmentation(**SMALL, seed=7) for _ in range(2)]
    second = [crops_of(layer, x) for layer in layers]
    for u, v, p in zip(*second, plain, strict=True):
        np.testing.assert_array_equal(u, v)  # replica 1 is reproducible too
        assert u.shape == p.shape and not np.array_equal(u, p)
    # The view advances the layer's own state as replica 0 does and adds no variable.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layers[0].seed_generator.state),
                                  keras.ops.convert_to_numpy(first.seed_generator.state))
    assert len(layers[0].variables) == 1


# Crops of the same 4 images on each of 2 replicas of a MirroredStrategy, and on one device.
_MIRRORED_CROPS = """
import sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from swav_keras.layers import MultiCropAugmentation
arguments = dict(num_crops=(2,), crop_sizes=(12,), min_scales=(0.1,), max_scales=(1.0,), seed=3)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = MultiCropAugmentation(**arguments)
x = np.random.default_rng(0).integers(0, 256, (4, 20, 20, 1)).astype("uint8")
batches = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices(np.concatenate([x, x])).batch(8))
step = tf.function(lambda b: strategy.run(lambda images: layer(images)[0], args=(b,)))
replicas = [v.numpy() for v in strategy.experimental_local_results(step(next(iter(batches))))]
np.savez(sys.argv[1], replica_0=replicas[0], replica_1=replicas[1],
         one_device=MultiCropAugmentation(**arguments)(x)[0].numpy())
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute replicas")
def test_mirrored_replicas_draw_different_crops(tmp_path):
    """Under MirroredStrategy, replica 1 crops its images apart; replica 0 as one device does."""
    out = tmp_path / "crops.npz"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", _MIRRORED_CROPS, str(out)],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    crops = np.load(out)
    # Up to float32 rounding: the replicas run a traced function, the one device eagerly.
    np.testing.assert_allclose(crops["replica_0"], crops["one_device"], rtol=1e-5, atol=1e-3)
    # The same images, new boxes: pixels move by tens of grey levels, not by rounding.
    assert np.abs(crops["replica_1"] - crops["replica_0"]).max() > 10.0


def test_each_crop_of_each_image_is_drawn_independently():
    same = np.repeat(images(batch=1), 8, axis=0)
    crops = crops_of(MultiCropAugmentation(**SMALL, seed=0), same)
    flat = np.concatenate([c.reshape(8, -1) for c in crops[:2]])
    distances = np.abs(flat[:, None] - flat[None]).sum(-1)
    assert (distances[~np.eye(16, dtype=bool)] > 0).all()


def test_uint8_and_float_inputs_agree_and_policies_keep_float32():
    x = images()
    as_uint8 = crops_of(MultiCropAugmentation(**SMALL, seed=3), x)
    as_float = crops_of(MultiCropAugmentation(**SMALL, seed=3), x.astype("float32"))
    for a, b in zip(as_uint8, as_float, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = MultiCropAugmentation(**SMALL, seed=3)
        assert all(c.dtype == np.float32 for c in crops_of(layer, x))
    finally:
        keras.config.set_dtype_policy("float32")


def test_statistics_match_the_tf_data_multicrop():
    # Same arguments, two implementations: the pixel statistics of many crops agree.
    x = images(batch=4096, size=16, seed=1)
    config = dict(num_crops=(1, 1), crop_sizes=(12, 6), min_scales=(0.14, 0.05),
                  max_scales=(1.0, 0.14), seed=0)
    ours = crops_of(MultiCropAugmentation(**config), x)
    tf_data = [np.asarray(c) for c in MultiCrop(**config)(x)]
    for a, b in zip(ours, tf_data, strict=True):
        # Seeds alone move the mean of 4096 crops by about 1.5 (of 255) here.
        assert abs(a.mean() - b.mean()) < 4.0 and abs(a.std() / b.std() - 1) < 0.03
        gray_a = (np.ptp(a, axis=-1).max((1, 2)) < 1e-3).mean()
        gray_b = (np.ptp(b, axis=-1).max((1, 2)) < 1e-3).mean()
        assert abs(gray_a - gray_b) < 0.03 and abs(gray_a - 0.2) < 0.03  # 20% turned gray


def test_config_round_trip_and_errors():
    layer = MultiCropAugmentation(**SMALL, jitter_strength=0.5, flip=False, seed=3, name="aug")
    config = layer.get_config()
    assert config["num_crops"] == (2, 3) and config["seed"] == 3 and config["flip"] is False
    assert config["name"] == "aug" and config["jitter_strength"] == 0.5
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, MultiCropAugmentation)
    assert {k: v for k, v in restored.get_config().items() if k != "dtype"} == {
        k: v for k, v in config.items() if k != "dtype"}
    with pytest.raises(ValueError, match=r"`crop_sizes` must have one entry per group of "
                                         r"`num_crops` \(2\); received crop_sizes=\(224,\)."):
        MultiCropAugmentation(crop_sizes=(224,))
    with pytest.raises(ValueError, match=r"`images` must be a batch \[batch, height, width, "
                                         r"channels\] of known height and width with 1 or 3 "
                                         r"channels; received images.shape=\(4, 24, 24, 2\)."):
        layer(np.zeros((4, 24, 24, 2), "uint8"))


def swav(augmentation, **kwargs):
    encoder = SmallResNet(width=8, input_shape=(None, None, 1))
    return swav_keras.SwAV(encoder, projection_dim=16, hidden_dim=32, num_prototypes=10,
                           augmentation=augmentation, **kwargs)


def test_swav_fits_on_raw_image_batches():
    keras.utils.set_random_seed(0)
    augmentation = MultiCropAugmentation((2, 2), (20, 10), (0.3, 0.1), (1.0, 0.3),
                                         saturation=0.0, hue=0.0, seed=0)
    model = swav(augmentation, queue_length=64, queue_start_step=2)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    state = keras.ops.convert_to_numpy(augmentation.seed_generator.state).copy()
    history = model.fit(ImageBatches(images(64, size=20, channels=1), 16, seed=0), epochs=2,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 2
    assert int(keras.ops.convert_to_numpy(model.step)) == 8
    # The generator advanced inside the compiled step: every step drew new crops.
    assert not np.array_equal(keras.ops.convert_to_numpy(augmentation.seed_generator.state), state)
    restored = swav_keras.SwAV.from_config(model.get_config())
    assert isinstance(restored.augmentation, MultiCropAugmentation)
    assert restored.augmentation.get_config()["crop_sizes"] == (20, 10)
    assert swav_keras.SwAV.from_config(swav(None).get_config()).augmentation is None


def test_swav_augmentation_errors():
    with pytest.raises(TypeError, match="`augmentation` must be a keras.layers.Layer "
                                        r"\(e.g. swav_keras.layers.MultiCropAugmentation\) or "
                                        "None; received augmentation of type MultiCrop."):
        swav(MultiCrop())
    model = swav(MultiCropAugmentation(**SMALL, seed=0))
    x = images(channels=1)
    with pytest.raises(ValueError, match=r"With `augmentation`, each element must be a batch of "
                                         r"raw images \[B, H, W, C\] \(or a 1-tuple of it\); "
                                         "received a sequence of 2 entries."):
        model((x, x))


@UNDER_JAX_AND_TORCH
def test_trains_without_tensorflow():
    # A machine without TensorFlow (e.g. a GPU image with only JAX or PyTorch) can train.
    backend = keras.backend.backend()
    out = run_without_tensorflow("""
        import numpy as np, keras, swav_keras
        from swav_keras.backbones import SmallResNet
        from swav_keras.data import ImageBatches
        from swav_keras.layers import MultiCropAugmentation
        augmentation = MultiCropAugmentation((2, 2), (16, 8), (0.3, 0.1), (1.0, 0.3), seed=0)
        encoder = SmallResNet(width=4, input_shape=(None, None, 1), mean=(70.0,), std=(80.0,))
        model = swav_keras.SwAV(encoder, projection_dim=8, hidden_dim=0, num_prototypes=5,
                                augmentation=augmentation)
        model.compile(optimizer="sgd")
        x = np.random.default_rng(0).integers(0, 256, (32, 16, 16)).astype("uint8")
        loss = model.fit(ImageBatches(x, 16, seed=0), epochs=1, verbose=0).history["loss"]
        assert np.isfinite(loss).all(), loss
        print("trained", keras.backend.backend(), "tensorflow" in sys.modules)
    """, backend)
    assert f"trained {backend} False" in out


def test_weights_files_keep_the_generator_state(tmp_path):
    def model():
        return swav(MultiCropAugmentation(**SMALL, seed=0))

    x = images(channels=1)
    trained = model()
    trained(x)
    trained(x)  # two calls' worth of draws
    path = str(tmp_path / "swav.weights.h5")
    trained.save_weights(path)
    restored = model()
    restored(x)  # one call: built, generator behind
    restored.load_weights(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored.augmentation.seed_generator.state),
        keras.ops.convert_to_numpy(trained.augmentation.seed_generator.state))
    for a, b in zip(crops_of(trained.augmentation, x), crops_of(restored.augmentation, x),
                    strict=True):
        np.testing.assert_array_equal(a, b)  # the same next crops
