"""Tests of `swav_keras.evaluation.corner_pooling`, run under every backend."""

import keras
import numpy as np
import pytest

from swav_keras.backbones import SmallResNet
from swav_keras.evaluation import CornerAveragePooling2D, corner_pooled_encoder, extract_features


def _sliding_average(maps, window_h, window_w):
    """NumPy reference: PyTorch's `AvgPool2d((window_h, window_w), stride=1)` on channels-last
    maps, flattened position by position (row-major), channels last."""
    n, h, w, c = maps.shape
    rows, cols = h - window_h + 1, w - window_w + 1
    out = np.zeros((n, rows, cols, c), dtype="float64")
    for i in range(rows):
        for j in range(cols):
            window = maps[:, i:i + window_h, j:j + window_w].astype("float64")
            out[:, i, j] = window.mean(axis=(1, 2))
    return out.reshape(n, rows * cols * c)


@pytest.mark.parametrize("shape", [(3, 7, 7, 5), (2, 4, 4, 3), (2, 2, 2, 1), (2, 5, 3, 2)])
def test_matches_sliding_average_pooling_of_windows_one_smaller(shape):
    maps = np.random.default_rng(0).normal(size=shape).astype("float32")
    got = keras.ops.convert_to_numpy(CornerAveragePooling2D()(maps))
    expected = _sliding_average(maps, shape[1] - 1, shape[2] - 1)
    assert got.dtype == np.float32 and got.shape == (shape[0], 4 * shape[3])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_seven_by_seven_is_the_originals_avgpool_of_six():
    """ResNet-50's 7x7 map in SwAV's `RegLog`: `AvgPool2d(6, stride=1)`."""
    maps = np.random.default_rng(1).uniform(0, 3, (2, 7, 7, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(CornerAveragePooling2D()(maps))
    np.testing.assert_allclose(got, _sliding_average(maps, 6, 6), rtol=1e-5, atol=1e-6)
    # The top-left cell is the mean of rows and columns 0..5, channel by channel.
    np.testing.assert_allclose(got[:, :4], maps[:, :6, :6].mean(axis=(1, 2)), rtol=1e-5)


def test_low_precision_input_is_pooled_in_float32():
    maps = keras.ops.cast(np.full((1, 3, 3, 2), 1.5, "float32"), "bfloat16")
    got = CornerAveragePooling2D()(maps)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), np.full((1, 8), 1.5))


def test_bad_input_shapes_are_refused():
    with pytest.raises(ValueError) as error:
        CornerAveragePooling2D()(np.zeros((2, 1, 5, 3), "float32"))
    assert str(error.value) == (
        "CornerAveragePooling2D needs a feature map of height 2 or more (four windows one "
        "smaller than the map); received inputs of shape (2, 1, 5, 3)."
    )
    with pytest.raises(ValueError) as error:
        CornerAveragePooling2D()(np.zeros((2, 5, 3), "float32"))
    assert str(error.value) == (
        "CornerAveragePooling2D takes feature maps [batch, height, width, channels]; "
        "received inputs of shape (2, 5, 3)."
    )


def test_encoder_keeps_its_layers_and_pools_its_last_map():
    keras.utils.set_random_seed(0)
    encoder = SmallResNet(8, (28, 28, 1), mean=[72.9], std=[90.0], stages=3)
    images = np.random.default_rng(2).uniform(0, 255, (6, 28, 28, 1)).astype("float32")
    pooled = corner_pooled_encoder(encoder)
    assert pooled.output_shape == (None, 4 * 32)
    assert len(pooled.weights) == len(encoder.weights)
    features, _ = extract_features(pooled, images, verbose=0)
    last_map = keras.Model(encoder.inputs, encoder.layers[-1].input).predict(images, verbose=0)
    assert last_map.shape[1:3] == (7, 7)
    np.testing.assert_allclose(features, _sliding_average(last_map, 6, 6), rtol=1e-4, atol=1e-5)
    # The same map averaged globally is the encoder's own output.
    own, _ = extract_features(encoder, images, verbose=0)
    np.testing.assert_allclose(own, last_map.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_encoder_of_unknown_image_size():
    keras.utils.set_random_seed(0)
    pooled = corner_pooled_encoder(SmallResNet(4, (None, None, 1), stages=2))
    assert pooled.output_shape == (None, 4 * 8)
    for size in (16, 28):
        images = np.zeros((2, size, size, 1), "float32")
        assert pooled.predict(images, verbose=0).shape == (2, 32)


def test_encoders_without_a_final_global_average_pooling_are_refused():
    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs))
    dense = keras.Model(inputs, logits)
    with pytest.raises(ValueError) as error:
        corner_pooled_encoder(dense)
    assert str(error.value) == (
        "`encoder` must end in a channels-last GlobalAveragePooling2D layer, whose input map is "
        "pooled 2x2 instead; received an encoder whose last layer is Dense 'logits'."
    )
    pooled = keras.layers.GlobalAveragePooling2D("channels_first", name="gap")(inputs)
    first = keras.Model(inputs, pooled)
    with pytest.raises(ValueError) as error:
        corner_pooled_encoder(first)
    assert str(error.value).endswith("layer is GlobalAveragePooling2D 'gap' (channels_first).")
    with pytest.raises(TypeError) as error:
        corner_pooled_encoder("encoder.keras")
    assert str(error.value) == "`encoder` must be a keras.Model; received encoder of type str."
