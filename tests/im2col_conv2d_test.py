"""Tests of `im2col_conv` and `Im2colConv2D` against a float64 NumPy conv, under every backend."""

import os

import keras
import numpy as np
import pytest

from swav_keras import backends
from swav_keras.backbones import SmallResNet
from swav_keras.layers.im2col_conv2d import (
    Im2colConv2D,
    im2col_conv,
    to_conv2d,
    to_im2col_conv2d,
    with_conv_implementation,
)


def reference_conv(x, kernel):
    """Float64 stride-1 'same' conv by explicit windows."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    size = kernel.shape[0]
    half = size // 2
    _, height, width, _ = x.shape
    padded = np.pad(x, [(0, 0), (half, half), (half, half), (0, 0)])
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(size):
        for j in range(size):
            out += padded[:, i : i + height, j : j + width, :] @ kernel[i, j]
    return out


@pytest.mark.parametrize("size", [1, 3, 5])
def test_im2col_conv_matches_reference(size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 7, 5, 3)).astype("float32")  # not square on purpose
    kernel = rng.standard_normal((size, size, 3, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(im2col_conv(x, kernel))
    np.testing.assert_allclose(got, reference_conv(x, kernel), rtol=1e-5, atol=1e-5)


def _model(layer_class, **kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    outputs = layer_class(3, 3, padding="same", **kwargs)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_layer_trains_as_conv2d():
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype("float32")
    target = np.ones((4, 6, 6, 3), "float32")
    native, im2col = _model(keras.layers.Conv2D), _model(Im2colConv2D)
    for before, after in zip(native.get_weights(), im2col.get_weights()):
        np.testing.assert_array_equal(before, after)
    start = native.get_weights()[0]
    np.testing.assert_allclose(im2col.predict(x, verbose=0), native.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    native.train_on_batch(x, target)
    im2col.train_on_batch(x, target)
    assert np.abs(native.get_weights()[0] - start).max() > 1e-3  # the step moved the kernel
    for a, b in zip(native.get_weights(), im2col.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"strides": 2}, "strides=1; received strides=(2, 2)"),
        ({"padding": "valid"}, "padding='same'; received padding='valid'"),
        ({"kernel_size": (3, 1)}, "an odd square kernel_size; received (3, 1)"),
        ({"kernel_size": 2}, "an odd square kernel_size; received (2, 2)"),
        ({"dilation_rate": 2}, "dilation_rate=1; received (2, 2)"),
    ],
)
def test_ineligible_arguments_are_refused(kwargs, message):
    arguments = {"filters": 4, "kernel_size": 3, "padding": "same", **kwargs}
    with pytest.raises(ValueError) as info:
        Im2colConv2D(**arguments)
    assert str(info.value) == f"Im2colConv2D needs {message}."


def test_conversions_keep_the_function_and_export_plain_keras(tmp_path):
    encoder = SmallResNet(width=4, input_shape=(None, None, 1), mean=[72.9], std=[90.0])
    fast = to_im2col_conv2d(encoder)
    kinds = [type(layer) for layer in fast.layers if isinstance(layer, keras.layers.Conv2D)]
    # Every conv of the small ResNet is stride 1 'same' (strided 3x3 convs pad first and
    # are 'valid'; strided 1x1 shortcuts subsample first): all but the 3 padded ones.
    assert kinds.count(Im2colConv2D) == len(kinds) - 3
    assert kinds.count(keras.layers.Conv2D) == 3
    x = np.random.default_rng(1).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    want = keras.ops.convert_to_numpy(encoder(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)), want, rtol=1e-4, atol=1e-4)
    plain = to_conv2d(fast)
    assert not any(isinstance(layer, Im2colConv2D) for layer in plain.layers)
    path = os.path.join(tmp_path, "encoder.keras")
    plain.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), want, rtol=1e-4,
                               atol=1e-4)


def test_saves_and_loads_as_itself(tmp_path):
    model = _model(Im2colConv2D)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[-1], Im2colConv2D)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()


def test_with_conv_implementation_chooses_and_names_it():
    encoder = SmallResNet(width=4, input_shape=(8, 8, 1))
    same, chosen = with_conv_implementation(encoder, "native")
    assert same is encoder and chosen == "native"
    converted, chosen = with_conv_implementation(encoder, "im2col")
    assert chosen == "im2col"
    assert any(isinstance(layer, Im2colConv2D) for layer in converted.layers)
    auto, chosen = with_conv_implementation(encoder)
    expected = "im2col" if backends.active().prefers_im2col_conv() else "native"
    assert chosen == expected
    assert any(isinstance(layer, Im2colConv2D) for layer in auto.layers) == (
        expected == "im2col"
    )
    with pytest.raises(ValueError) as info:
        with_conv_implementation(encoder, "winograd")
    assert str(info.value) == (
        "`implementation` must be one of ('auto', 'native', 'im2col'); received "
        "implementation='winograd'."
    )
