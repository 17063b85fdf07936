"""Tests of `swav_keras.layers.CornerAveragePooling2D`, run under every backend."""

import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.layers import CornerAveragePooling2D


@pytest.mark.parametrize("shape", [(3, 7, 7, 5), (2, 4, 4, 3), (2, 2, 2, 1), (2, 5, 3, 2)])
def test_matches_sliding_average_pooling_of_windows_one_smaller(shape):
    maps = np.random.default_rng(0).normal(size=shape).astype("float32")
    got = keras.ops.convert_to_numpy(CornerAveragePooling2D()(maps))
    expected = ref.sliding_average(maps, shape[1] - 1, shape[2] - 1)
    assert got.dtype == np.float32 and got.shape == (shape[0], 4 * shape[3])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_seven_by_seven_is_the_originals_avgpool_of_six():
    """ResNet-50's 7x7 map in SwAV's `RegLog`: `AvgPool2d(6, stride=1)`."""
    maps = np.random.default_rng(1).uniform(0, 3, (2, 7, 7, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(CornerAveragePooling2D()(maps))
    np.testing.assert_allclose(got, ref.sliding_average(maps, 6, 6), rtol=1e-5, atol=1e-6)
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
