"""Tests of `swav_keras.layers.GridAveragePooling2D`, run under every backend."""

import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.layers import GridAveragePooling2D


@pytest.mark.parametrize("shape,grid_size", [
    ((3, 7, 7, 5), 3), ((3, 7, 7, 5), 2), ((2, 4, 4, 3), 2), ((2, 5, 3, 2), 2), ((2, 3, 3, 1), 3),
    ((2, 10, 6, 2), 4),
])
def test_matches_the_average_of_each_disjoint_cell(shape, grid_size):
    maps = np.random.default_rng(0).normal(size=shape).astype("float32")
    got = keras.ops.convert_to_numpy(GridAveragePooling2D(grid_size)(maps))
    assert got.dtype == np.float32 and got.shape == (shape[0], grid_size**2 * shape[3])
    np.testing.assert_allclose(got, ref.grid_average(maps, grid_size), rtol=1e-5, atol=1e-6)


def test_seven_by_seven_in_three_cuts_three_two_two():
    maps = np.random.default_rng(1).uniform(0, 3, (2, 7, 7, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(GridAveragePooling2D(3)(maps)).reshape(2, 3, 3, 4)
    np.testing.assert_allclose(got[:, 0, 0], maps[:, :3, :3].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1, 2], maps[:, 3:5, 5:].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(got[:, 2, 1], maps[:, 5:, 3:5].mean(axis=(1, 2)), rtol=1e-5)


def test_every_position_counts_once_and_one_cell_is_the_global_average():
    maps = np.random.default_rng(2).normal(size=(2, 7, 5, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(GridAveragePooling2D(2)(maps)).reshape(2, 2, 2, 3)
    sizes = np.array([4, 3])[:, None] * np.array([3, 2])[None, :]  # rows 4+3, columns 3+2
    np.testing.assert_allclose((got * sizes[None, :, :, None]).sum(axis=(1, 2)),
                               maps.sum(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    whole = keras.ops.convert_to_numpy(GridAveragePooling2D(1)(maps))
    np.testing.assert_allclose(whole, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_any_map_size_in_one_model_under_predict():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, GridAveragePooling2D(2)(inputs))
    assert model.output_shape == (None, 8)
    for size in (7, 4, 7):
        maps = np.random.default_rng(size).normal(size=(3, size, size, 2)).astype("float32")
        np.testing.assert_allclose(model.predict(maps, verbose=0), ref.grid_average(maps, 2),
                                   rtol=1e-5, atol=1e-6)


def test_low_precision_input_is_pooled_in_float32():
    maps = keras.ops.cast(np.full((1, 3, 3, 2), 1.5, "float32"), "bfloat16")
    got = GridAveragePooling2D(3)(maps)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), np.full((1, 18), 1.5))


def test_config_round_trip():
    layer = GridAveragePooling2D(3, name="cells")
    assert layer.get_config()["grid_size"] == 3
    clone = GridAveragePooling2D.from_config(layer.get_config())
    assert clone.grid_size == 3 and clone.name == "cells"


@pytest.mark.parametrize("grid_size,error,message", [
    (0, ValueError, "`grid_size` must be a positive integer; received grid_size=0."),
    ("2", TypeError, "`grid_size` must be an integer; received grid_size='2'."),
    (2.0, TypeError, "`grid_size` must be an integer; received grid_size=2.0."),
])
def test_bad_grid_size_is_refused(grid_size, error, message):
    with pytest.raises(error) as info:
        GridAveragePooling2D(grid_size)
    assert str(info.value) == message


def test_bad_input_shapes_are_refused():
    with pytest.raises(ValueError) as error:
        GridAveragePooling2D(3)(np.zeros((2, 5, 2, 3), "float32"))
    assert str(error.value) == (
        "GridAveragePooling2D(grid_size=3) needs a feature map of width 3 or more (one row "
        "and column per cell at least); received inputs of shape (2, 5, 2, 3)."
    )
    with pytest.raises(ValueError) as error:
        GridAveragePooling2D()(np.zeros((2, 5, 3), "float32"))
    assert str(error.value) == (
        "GridAveragePooling2D(grid_size=2) takes feature maps [batch, height, width, channels]; "
        "received inputs of shape (2, 5, 3)."
    )


def test_a_map_too_small_for_the_grid_is_refused_when_the_model_takes_any_size():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, GridAveragePooling2D(4)(inputs))
    with pytest.raises(ValueError) as error:
        model(np.zeros((2, 3, 5, 2), "float32"))
    # Keras adds the layer's call arguments around an error raised in `call`.
    assert (
        "GridAveragePooling2D(grid_size=4) needs a feature map of height 4 or more (one row "
        "and column per cell at least); received inputs of shape (2, 3, 5, 2)."
    ) in str(error.value)
