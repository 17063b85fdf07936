"""Tests of `swav_keras.backbones.VisionTransformer`: crop sizes, pooling, saving, SwAV, errors."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import configs
from recipes.pretrain import pretrain
from swav_keras import SwAV
from swav_keras.backbones import VisionTransformer


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def tiny(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    config = dict(patch_size=4, width=16, depth=2, num_heads=2, image_size=16,
                  input_shape=(None, None, 1), mean=[72.9], std=[90.0])
    config.update(kwargs)
    return VisionTransformer(**config)


def _tokens(model, images):
    """The final LayerNormalization's tokens, the layer the pooling reads."""
    return _numpy(keras.Model(model.inputs, model.get_layer("norm").output)(images))


@pytest.mark.parametrize("pooling", ["token", "mean"])
def test_two_crop_sizes_through_one_model_and_the_pooling(pooling):
    model = tiny(pooling=pooling, depth=1)
    assert model.output_shape == (None, 16) and model.name == "vision_transformer"
    for size, patches in [(16, 16), (8, 4), (12, 9)]:
        images = _images((3, size, size, 1), seed=size)
        features = _numpy(model(images))
        tokens = _tokens(model, images)
        assert features.shape == (3, 16) and np.all(np.isfinite(features))
        if pooling == "token":  # the class token, then the patches
            assert tokens.shape == (3, 1 + patches, 16)
            np.testing.assert_allclose(features, tokens[:, 0], atol=1e-6)
        else:
            assert tokens.shape == (3, patches, 16)
            np.testing.assert_allclose(features, tokens.mean(axis=1), atol=1e-5)
    # A large crop and a small one are different inputs to the same weights.
    assert len(model.get_layer("position_embedding").weights) == (3 if pooling == "token" else 1)


def test_position_embedding_is_resized_to_the_crop_grid():
    model = tiny(depth=1)
    layer = model.get_layer("position_embedding")
    grid = _numpy(layer.weights[0])
    assert grid.shape == (4, 4, 16) and layer.grid_size == (4, 4)
    inner = keras.Model(model.inputs, layer.output)
    patches = keras.Model(model.inputs, model.get_layer("patch_embedding").output)
    images = _images((2, 8, 8, 1))
    # A 2x2 grid from 4x4, bicubic (a = -0.75), align_corners=False: output 0 reads the
    # input at 0.5, taps -1, 0, 1, 2 at distances 1.5, 0.5, 0.5, 1.5 weigh -0.09375, 0.59375,
    # 0.59375, -0.09375, and tap -1 reads sample 0; output 1 mirrors it.
    w = np.array([[0.5, 0.59375, -0.09375, 0.0], [0.0, -0.09375, 0.59375, 0.5]])
    expected = np.einsum("hi,ijc,wj->hwc", w, grid, w)
    tokens = _numpy(inner(images))[:, 1:] - _numpy(patches(images)).reshape(2, 4, 16)
    np.testing.assert_allclose(tokens, np.broadcast_to(expected.reshape(4, 16), (2, 4, 16)),
                               atol=1e-5)


def test_pixels_that_do_not_fill_a_patch_are_ignored():
    model = tiny(depth=1)
    images = _images((2, 19, 18, 1))
    np.testing.assert_allclose(_numpy(model(images)), _numpy(model(images[:, :16, :16])),
                               atol=1e-5)


def test_parameter_count_of_the_tiny_model_and_vit_small():
    def count(p, w, d, c, tokens):
        block = 4 * w + 4 * (w * w + w) + 2 * w * 4 * w + 4 * w + w
        return p * p * c * w + w + tokens * w + d * block + 2 * w

    assert tiny().count_params() == count(4, 16, 2, 1, 16 + 2)
    assert tiny(pooling="mean").count_params() == count(4, 16, 2, 1, 16)
    # ViT-S/16 of DINO: 21.7M parameters (197 position embeddings, a class token).
    assert count(16, 384, 12, 3, 196 + 2) == 21_665_664


def test_keras_file_round_trip_gives_equal_outputs(tmp_path):
    model = tiny(pooling="token", interpolation="bilinear")
    path = str(tmp_path / "vit.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for size in (16, 8):
        images = _images((2, size, size, 1), seed=size)
        np.testing.assert_allclose(_numpy(loaded(images)), _numpy(model(images)), atol=1e-6)
    assert loaded.get_layer("position_embedding").interpolation == "bilinear"


LOAD_ELSEWHERE = """
import sys
import keras
import numpy as np
import swav_keras  # registers the custom layers
model = keras.saving.load_model(sys.argv[1])
for size in (16, 8):
    images = np.load(sys.argv[2] + f"_{size}.npy")
    np.save(sys.argv[2] + f"_{size}_out.npy", keras.ops.convert_to_numpy(model(images)))
"""


def test_keras_file_loads_under_another_backend(tmp_path):
    model = tiny(pooling="token")
    path = str(tmp_path / "vit.keras")
    model.save(path)
    prefix = str(tmp_path / "images")
    for size in (16, 8):
        np.save(f"{prefix}_{size}.npy", _images((2, size, size, 1), seed=size))
    backends = ("tensorflow", "jax", "torch")
    other = backends[(backends.index(keras.backend.backend()) + 1) % 3]
    run = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, path, prefix],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3"))
    assert run.returncode == 0, run.stderr[-3000:]
    for size in (16, 8):
        expected = _numpy(model(np.load(f"{prefix}_{size}.npy")))
        np.testing.assert_allclose(np.load(f"{prefix}_{size}_out.npy"), expected, atol=1e-5)


def test_trains_inside_swav_with_crops_of_two_sizes():
    encoder = tiny(depth=1)
    rng = np.random.default_rng(0)
    crops = tuple(rng.uniform(0, 255, (16, s, s, 1)).astype("float32") for s in (16, 16, 8, 8))
    dataset = tf.data.Dataset.from_tensor_slices(crops).batch(8).map(lambda *c: (c,))
    model = SwAV(encoder, projection_dim=8, hidden_dim=16, num_prototypes=6)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    model(crops, training=False)
    before = [_numpy(w) for w in encoder.get_layer("position_embedding").weights]
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = [_numpy(w) for w in encoder.get_layer("position_embedding").weights]
    for old, new in zip(before, after):  # grid, class token and its position all learn
        assert np.abs(new - old).max() > 1e-4


def test_pretrain_recipe_with_the_vit_config(tmp_path):
    config = configs.get_config(
        "fashion_mnist_vit", width=16, depth=1, num_heads=2, projection_dim=8, hidden_dim=16,
        num_prototypes=10, batch_size=32, num_crops=(2, 2), epochs=1, linear_epochs=1,
    )
    result = pretrain(config, str(tmp_path / "run"), train_examples=32, verbose=0)
    assert np.isfinite(result["history"]["loss"]).all() and result["steps_per_epoch"] == 1
    encoder = keras.saving.load_model(result["encoder_path"])
    assert encoder.name == "vision_transformer"
    assert encoder.get_layer("position_embedding").grid_size == (7, 7)  # 28 / patch 4
    raw = np.full((2, 28, 28, 1), 128.0, "float32")  # raw pixels in: normalisation inside
    assert tuple(encoder(raw).shape) == (2, 16)


@pytest.mark.parametrize("kwargs, kind, message", [
    ({"patch_size": 0}, ValueError,
     "`patch_size` must be a positive integer; received patch_size=0."),
    ({"depth": 1.0}, TypeError, "`depth` must be an integer; received depth=1.0."),
    ({"num_heads": 3}, ValueError,
     "`width` must be a multiple of `num_heads`; received width=16, num_heads=3."),
    ({"mlp_ratio": 0}, ValueError, "`mlp_ratio` must be a positive number; received mlp_ratio=0."),
    ({"image_size": 18}, ValueError,
     "`image_size` must be a multiple of `patch_size` (4), or a pair of them; received "
     "image_size=18."),
    ({"image_size": (16, 16, 16)}, ValueError,
     "`image_size` must be a multiple of `patch_size` (4), or a pair of them; received "
     "image_size=(16, 16, 16)."),
    ({"pooling": "avg"}, ValueError,
     "`pooling` must be one of ('token', 'mean'); received pooling='avg'."),
    ({"input_shape": (30, 32, 1)}, ValueError,
     "`input_shape` must have a height and width that are multiples of `patch_size` (4), or "
     "None; received input_shape=(30, 32, 1)."),
    ({"interpolation": "area"}, ValueError,
     "`interpolation` must be one of ('bicubic', 'bilinear'); received interpolation='area'."),
    ({"mean": [1.0, 2.0]}, ValueError,
     "`mean` must be a sequence of 1 number(s), one per input channel; received "
     "mean=[1.0, 2.0]."),
])
def test_bad_arguments_are_refused(kwargs, kind, message):
    with pytest.raises(kind) as info:
        tiny(**kwargs)
    assert str(info.value) == message
