"""Tests of `InterpolatedPositionEmbedding` and its resizing against NumPy and PyTorch values."""

import keras
import numpy as np
import pytest

from swav_keras.layers import ClassTokenPooling, InterpolatedPositionEmbedding
from swav_keras.layers.position_embedding import interpolate_grid, resize_matrix


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _cubic(x, a=-0.75):
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def reference_resize(signal, size, interpolation):
    """float64 loop over output samples: PyTorch's `interpolate(align_corners=False)`."""
    n = signal.shape[0]
    out = np.zeros((size,) + signal.shape[1:])
    for i in range(size):
        x = (i + 0.5) * n / size - 0.5
        if interpolation == "bilinear":
            x = max(x, 0.0)
            left = int(np.floor(x))
            right = min(left + 1, n - 1)
            out[i] = (1 - (x - left)) * signal[left] + (x - left) * signal[right]
        else:
            base = int(np.floor(x))
            for k in range(base - 1, base + 3):
                out[i] += _cubic(x - k) * signal[min(max(k, 0), n - 1)]
    return out


def reference_grid(grid, height, width, interpolation):
    rows = reference_resize(grid, height, interpolation)
    return reference_resize(rows.transpose(1, 0, 2), width, interpolation).transpose(1, 0, 2)


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_resize_matrix_matches_numpy_and_is_the_identity_at_equal_sizes(interpolation):
    for size in (1, 5, 14):
        np.testing.assert_array_equal(_numpy(resize_matrix(size, size, interpolation)),
                                      np.eye(size))
    for n_in, n_out in [(4, 7), (7, 4), (14, 6), (1, 3)]:
        matrix = _numpy(resize_matrix(n_in, n_out, interpolation))
        np.testing.assert_allclose(matrix, reference_resize(np.eye(n_in), n_out, interpolation),
                                   atol=3e-6)  # float32
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("interpolation, expected", [
    # torch.nn.functional.interpolate(grid, size=(5, 2), mode=..., align_corners=False),
    # grid = arange(9).reshape(3, 3) ** 2 / 8 (computed with PyTorch 2.13).
    ("bicubic", [[-0.10664453, 0.18121484], [0.254, 1.04157031], [1.28369141, 2.90087891],
                 [3.52838281, 5.9751875], [5.14002734, 8.08654297]]),
    ("bilinear", [[0.03125, 0.40625], [0.55625, 1.38125], [1.34375, 2.84375],
                  [3.48125, 5.65625], [4.90625, 7.53125]]),
])
def test_interpolate_grid_gives_pytorch_values(interpolation, expected):
    grid = (np.arange(9.0).reshape(3, 3, 1) ** 2 / 8).astype("float32")
    resized = _numpy(interpolate_grid(grid, 5, 2, interpolation))
    np.testing.assert_allclose(resized[..., 0], expected, atol=1e-5)
    np.testing.assert_allclose(resized, reference_grid(grid, 5, 2, interpolation), atol=1e-5)


def _weights(layer):
    values = {w.path.split("/")[-1]: _numpy(w) for w in layer.weights}
    return values["position_embedding"], values.get("class_token"), values.get("class_position")


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_tokens_add_the_resized_grid_and_put_the_class_token_first(interpolation):
    keras.utils.set_random_seed(1)
    layer = InterpolatedPositionEmbedding((4, 3), interpolation=interpolation)
    patches = np.random.default_rng(0).normal(size=(2, 4, 3, 5)).astype("float32")
    tokens = _numpy(layer(patches))
    grid, token, position = _weights(layer)
    assert grid.shape == (4, 3, 5) and token.shape == position.shape == (5,)
    assert tokens.shape == (2, 13, 5)
    np.testing.assert_allclose(tokens[:, 0], np.broadcast_to(token + position, (2, 5)),
                               atol=1e-6)
    # The reference grid: the embedding as it is, row by row.
    np.testing.assert_allclose(tokens[:, 1:], (patches + grid).reshape(2, 12, 5), atol=1e-6)
    for height, width in [(2, 2), (6, 5), (4, 7)]:
        small = patches[:, :1, :1] + np.zeros((2, height, width, 5), "float32")
        expected = small + reference_grid(grid, height, width, interpolation)
        tokens = _numpy(layer(small))
        assert tokens.shape == (2, 1 + height * width, 5)
        np.testing.assert_allclose(tokens[:, 1:], expected.reshape(2, -1, 5), atol=1e-5)


def test_sizes_known_only_at_run_time_and_no_class_token():
    keras.utils.set_random_seed(2)
    layer = InterpolatedPositionEmbedding(3, class_token=False)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, None, 4) and len(layer.weights) == 1
    grid = _numpy(layer.weights[0])
    patches = np.ones((1, 5, 2, 4), "float32")
    np.testing.assert_allclose(_numpy(model(patches)),
                               (1 + reference_grid(grid, 5, 2, "bicubic")).reshape(1, 10, 4),
                               atol=1e-5)
    assert layer.compute_output_shape((None, 3, 3, 4)) == (None, 9, 4)


def test_config_round_trip_and_gradient_reaches_the_embedding():
    layer = InterpolatedPositionEmbedding((2, 3), class_token=False, interpolation="bilinear",
                                          name="pos")
    config = layer.get_config()
    assert (config["grid_size"], config["class_token"]) == ((2, 3), False)
    assert config["interpolation"] == "bilinear"
    copy = InterpolatedPositionEmbedding.from_config(
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(config))
    )
    assert (copy.grid_size, copy.class_token, copy.interpolation, copy.name) == (
        (2, 3), False, "bilinear", "pos")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, InterpolatedPositionEmbedding) and restored.grid_size == (2, 3)


@pytest.mark.parametrize("kwargs, kind, message", [
    ({"grid_size": 0}, ValueError, "`grid_size` must be a positive integer; received grid_size=0."),
    ({"grid_size": 2.5}, TypeError, "`grid_size` must be an integer; received grid_size=2.5."),
    ({"grid_size": (2, 3, 4)}, ValueError,
     "`grid_size` must be a positive integer or a pair of them; received grid_size=(2, 3, 4)."),
    ({"class_token": 1}, TypeError, "`class_token` must be a bool; received class_token=1."),
    ({"interpolation": "nearest"}, ValueError,
     "`interpolation` must be one of ('bicubic', 'bilinear'); received "
     "interpolation='nearest'."),
])
def test_bad_arguments_are_refused(kwargs, kind, message):
    with pytest.raises(kind) as info:
        InterpolatedPositionEmbedding(**kwargs)
    assert str(info.value) == message


def test_tokens_instead_of_a_grid_are_refused():
    with pytest.raises(ValueError) as info:
        InterpolatedPositionEmbedding(2)(np.zeros((1, 4, 3), "float32"))
    assert str(info.value) == (
        "InterpolatedPositionEmbedding takes patch grids [batch, height, width, channels] with "
        "known channels; received inputs of shape (1, 4, 3)."
    )


def test_class_token_pooling_reads_the_first_token_back():
    tokens = np.random.default_rng(3).normal(size=(2, 5, 4)).astype("float32")
    layer = ClassTokenPooling(name="first")
    np.testing.assert_array_equal(_numpy(layer(tokens)), tokens[:, 0])
    assert layer.compute_output_shape((None, None, 4)) == (None, 4)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ClassTokenPooling) and restored.name == "first"
