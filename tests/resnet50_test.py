"""Tests of `swav_keras.backbones.ResNet50`: 2048 features, any channels, normalisation, errors."""

import keras
import numpy as np
import pytest

from swav_keras.backbones.resnet50 import ResNet50


@pytest.fixture(scope="module")
def grayscale():
    keras.utils.set_random_seed(0)
    return ResNet50(input_shape=(None, None, 1), mean=[72.9], std=[90.0])


def test_tiny_grayscale_input_gives_2048_features(grayscale):
    assert grayscale.name == "resnet50"
    assert grayscale.output_shape == (None, 2048)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    features = keras.ops.convert_to_numpy(grayscale(images, training=False))
    assert features.shape == (2, 2048)
    assert np.all(np.isfinite(features)) and features.max() > 0


def test_keras_applications_architecture_with_pytorch_batchnorm(grayscale):
    reference = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(None, None, 1), pooling="avg"
    )
    ours = [layer.name for layer in grayscale.layers[2:]]  # after the input and normalisation
    assert ours == [layer.name for layer in reference.layers[1:]]
    assert grayscale.layers[1].name == "normalization"
    assert grayscale.count_params() == reference.count_params() == 23_581_440
    norms = [x for x in grayscale.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(norms) == 53
    assert all((layer.momentum, layer.epsilon) == (0.9, 1e-5) for layer in norms)


def test_normalisation_layer_takes_raw_pixels(grayscale):
    plain = ResNet50(input_shape=(None, None, 1))
    plain.set_weights(grayscale.get_weights())
    raw = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grayscale(raw, training=False)),
        keras.ops.convert_to_numpy(plain((raw - 72.9) / 90.0, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )


def test_default_rgb_input():
    model = ResNet50()
    assert model.input_shape == (None, None, None, 3)
    assert model.output_shape == (None, 2048)
    assert model.count_params() == 23_587_712  # keras.applications' ResNet50, no top


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"input_shape": (32, 32)},
            "`input_shape` must be a tuple (height, width, channels) of positive integers, "
            "height and width may be None; received input_shape=(32, 32).",
        ),
        (
            {"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]},
            "`mean` must be a sequence of 3 number(s), one per input channel; "
            "received mean=[0.5, 0.5].",
        ),
        (
            {"std": [0.2, 0.2, 0.2]},
            "`mean` must be given together with `std`; received mean=None.",
        ),
    ],
)
def test_error_messages(kwargs, message):
    with pytest.raises(ValueError) as info:
        ResNet50(**kwargs)
    assert str(info.value) == message
