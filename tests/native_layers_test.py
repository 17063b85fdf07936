"""`NativeConv2D` / `NativeBatchNormalization` against Keras's own layers, under every backend."""

import os

import keras
import numpy as np
import pytest
from autodiff import gradients

from swav_keras import backends
from swav_keras.backbones import ResNet50, SmallResNet
from swav_keras.layers import (
    NativeBatchNormalization,
    NativeConv2D,
    NativeMaxPooling2D,
    to_keras_layers,
    to_native_layers,
    with_layer_implementation,
)

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.linalg.norm(got - want) / max(1.0, np.linalg.norm(want)))


def encoder(seed=0):
    keras.utils.set_random_seed(seed)
    return SmallResNet(width=4, input_shape=(None, None, 2), mean=[1.0, 2.0], std=[2.0, 3.0])


def images(size=12, batch=4, seed=1):
    return np.random.default_rng(seed).uniform(0, 5, (batch, size, size, 2)).astype("float32")


def outputs_and_gradients(model, x, training):
    """Sum of outputs times fixed weights, and its gradients wrt the input and every weight."""
    trainable = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    shape = model.compute_output_shape(x.shape)
    probe = np.random.default_rng(7).standard_normal(shape).astype("float32")

    def fn(tensors):
        out, _ = model.stateless_call(tensors[1:], non_trainable, tensors[0], training=training)
        return keras.ops.sum(keras.ops.multiply(out, probe))

    value, grads = gradients(fn, [x] + trainable)
    # The moving statistics after the call, outside autodiff (JAX traces inside it).
    _, state = model.stateless_call(trainable, non_trainable, x, training=training)
    return value, grads, [keras.ops.convert_to_numpy(v) for v in state]


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("size", [12, 7])  # odd size: the stride-2 convs pad unevenly
def test_native_encoder_matches_keras_outputs_gradients_and_statistics(training, size):
    """Outputs, gradients (input and every weight) and moving statistics agree to 1e-5
    (relative to each array's norm). Where they do not, the native value must be the closer
    of the two to a float64 run of the Keras encoder: at 7x7 the last stage's BatchNorm sees
    1x1 maps of 4 images, and Keras's mean-of-squares variance loses more digits there
    (2e-5 from float64) than PyTorch's fused kernel (7e-6)."""
    plain = encoder()
    native = to_native_layers(plain)
    x = images(size)
    want = outputs_and_gradients(plain, x, training)
    got = outputs_and_gradients(native, x, training)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    assert len(got[1]) == len(want[1]) == 1 + len(plain.trainable_variables)
    assert len(got[2]) == len(want[2]) == len(plain.non_trainable_variables)
    pairs = list(zip(got[1] + got[2], want[1] + want[2]))
    apart = [i for i, (g, w) in enumerate(pairs) if relative_error(g, w) > 1e-5]
    if apart:
        exact = float64_outputs_and_gradients(plain, x, training)
        truth = exact[1] + exact[2]
        for i in apart:
            g, w = pairs[i]
            assert relative_error(g, truth[i]) < relative_error(w, truth[i]), i


def float64_outputs_and_gradients(plain, x, training):
    keras.config.set_dtype_policy("float64")
    try:
        exact = encoder()
    finally:
        keras.config.set_dtype_policy("float32")
    exact.set_weights(plain.get_weights())
    return outputs_and_gradients(exact, x.astype("float64"), training)


def test_native_layers_update_moving_statistics_as_keras_in_eager_calls():
    plain = encoder()
    native = to_native_layers(plain)
    x = images()
    want = keras.ops.convert_to_numpy(plain(x, training=True))
    got = keras.ops.convert_to_numpy(native(x, training=True))
    assert relative_error(got, want) < 1e-5
    for g, w in zip(native.non_trainable_weights, plain.non_trainable_weights):
        assert relative_error(keras.ops.convert_to_numpy(g), keras.ops.convert_to_numpy(w)) < 1e-5
    moved = [v for v in native.non_trainable_weights if "moving_mean" in v.path]
    assert moved and any(np.abs(keras.ops.convert_to_numpy(v)).max() > 0 for v in moved)


@pytest.mark.parametrize(
    "kwargs",
    [dict(padding="same", strides=2), dict(padding="same", kernel_size=2),
     dict(padding="valid", strides=2), dict(padding="same", dilation_rate=2),
     dict(padding="same", groups=2)],
)
def test_native_conv_matches_keras_conv_in_every_configuration(kwargs):
    config = dict(filters=4, kernel_size=3)
    config.update(kwargs)
    x = images(9)
    plain = keras.layers.Conv2D(**config)
    plain.build(x.shape)
    native = NativeConv2D(**config)
    native.build(x.shape)
    native.set_weights(plain.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(native(x)),
                               keras.ops.convert_to_numpy(plain(x)), **TOLERANCE)


def test_native_batch_norm_on_dense_features_matches_keras():
    x = np.random.default_rng(0).standard_normal((6, 5)).astype("float32") * 3 + 1
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False)
    native = NativeBatchNormalization(momentum=0.9, epsilon=1e-5, center=False)
    for layer in (plain, native):
        layer.build(x.shape)
    for training in (True, False):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(native(x, training=training)),
                                   keras.ops.convert_to_numpy(plain(x, training=training)),
                                   **TOLERANCE)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(native.moving_variance),
                               keras.ops.convert_to_numpy(plain.moving_variance), **TOLERANCE)


def test_conversions_swap_only_plain_layers_and_back():
    plain = encoder()
    native = to_native_layers(plain)
    kinds = {type(layer) for layer in native.layers}
    assert NativeConv2D in kinds and NativeBatchNormalization in kinds
    assert keras.layers.Conv2D not in kinds and keras.layers.BatchNormalization not in kinds
    assert NativeMaxPooling2D in kinds and keras.layers.MaxPooling2D not in kinds
    back = to_keras_layers(native)
    # Back to Keras's layers: the same layers, names and order, the paddings restored.
    assert [(type(a), a.name) for a in back.layers] == [(type(b), b.name) for b in plain.layers]
    assert [a.get_config() for a in back.layers] == [b.get_config() for b in plain.layers]
    for a, b in zip(back.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Same class names as Keras's: weight files address layers by them. The three paddings
    # before the strided 3x3 convolutions are folded into them.
    padded = [layer.name for layer in native.layers if getattr(layer, "fused_padding", None)]
    assert padded == ["conv3_block1_1_conv", "conv4_block1_1_conv", "conv5_block1_1_conv"]
    assert [type(layer).__name__ for layer in native.layers] == [
        type(layer).__name__ for layer in plain.layers
        if not isinstance(layer, keras.layers.ZeroPadding2D)
    ]


def test_resnet50_stem_padding_is_folded_and_outputs_agree():
    keras.utils.set_random_seed(0)
    plain = ResNet50(input_shape=(None, None, 3))
    native = to_native_layers(plain)
    names = {layer.name for layer in native.layers}
    # The stem's padding feeds a conv (folded); the pooling's feeds a max pooling (kept).
    assert "conv1_pad" not in names and "pool1_pad" in names
    assert native.get_layer("conv1_conv").fused_padding["padding"] == ((3, 3), (3, 3))
    x = np.random.default_rng(0).uniform(0, 1, (2, 67, 67, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(plain(x, training=False))
    got = keras.ops.convert_to_numpy(native(x, training=False))
    assert relative_error(got, want) < 1e-5
    back = to_keras_layers(native)
    assert [layer.name for layer in back.layers[1:]] == [layer.name for layer in plain.layers[1:]]


def test_fused_padding_must_be_an_even_channels_last_padding_before_a_valid_conv():
    even = keras.layers.ZeroPadding2D(1).get_config()
    uneven = keras.layers.ZeroPadding2D(((0, 1), (0, 1))).get_config()
    for config, padding in ((uneven, "valid"), (even, "same")):
        with pytest.raises(ValueError) as error:
            NativeConv2D(4, 3, padding=padding, fused_padding=config)
        assert str(error.value).startswith(
            "`fused_padding` must be the config of a channels-last ZeroPadding2D with equal "
            "padding on both sides of each axis, before a channels-last 'valid' convolution; "
            f"received fused_padding={config!r} with padding={padding!r}, "
        )
    layer = NativeConv2D(4, 3, strides=2, fused_padding=even)
    plain = keras.layers.Conv2D(4, 3, strides=2)
    x = images(9)
    plain.build((None, 11, 11, 2))
    layer.build(x.shape)
    layer.set_weights(plain.get_weights())
    want = keras.ops.convert_to_numpy(plain(keras.layers.ZeroPadding2D(1)(x)))
    assert layer.compute_output_shape(x.shape) == want.shape
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), want, **TOLERANCE)
    assert NativeConv2D.from_config(layer.get_config()).fused_padding == even


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("size", [8, 7])
def test_native_subsample_matches_keras_max_pooling_and_its_gradient(padding, size):
    x = images(size)
    plain = keras.layers.MaxPooling2D(1, 2, padding=padding)
    native = NativeMaxPooling2D(1, 2, padding=padding)
    for layer in (plain, native):
        layer.build(x.shape)
    _, (want,) = gradients(lambda t: keras.ops.sum(plain(t[0]) ** 2), [x])
    _, (got,) = gradients(lambda t: keras.ops.sum(native(t[0]) ** 2), [x])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(native(x)),
                                  keras.ops.convert_to_numpy(plain(x)))
    np.testing.assert_array_equal(got, want)
    pooled = NativeMaxPooling2D(2, 2)  # other poolings compute as Keras's
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pooled(x)),
                                  keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(2, 2)(x)))


def test_auto_picks_native_layers_only_where_the_adapter_has_native_kernels():
    plain = encoder()
    model, chosen = with_layer_implementation(plain, "auto")
    if keras.backend.backend() == "torch":
        assert backends.active().native_ops() is not None
        assert chosen == "native" and model is not plain
    else:
        assert backends.active().native_ops() is None
        assert chosen == "keras" and model is plain
    assert with_layer_implementation(plain, "keras") == (plain, "keras")
    assert with_layer_implementation(plain, "native")[1] == "native"


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError) as error:
        with_layer_implementation(encoder(), "fused")
    assert str(error.value) == (
        "`implementation` must be one of ('auto', 'keras', 'native'); received "
        "implementation='fused'."
    )


def test_saved_native_encoder_loads_and_exports_plain_layers(tmp_path):
    native = to_native_layers(encoder())
    x = images()
    want = keras.ops.convert_to_numpy(native(x, training=False))
    path = os.path.join(tmp_path, "native.keras")
    native.save(path)
    loaded = keras.models.load_model(path)
    assert any(isinstance(layer, NativeConv2D) for layer in loaded.layers)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), want,
                               **TOLERANCE)
    exported = os.path.join(tmp_path, "plain.keras")
    to_keras_layers(native).save(exported)
    plain = keras.models.load_model(exported)
    assert not any(isinstance(layer, (NativeConv2D, NativeBatchNormalization,
                                      NativeMaxPooling2D)) for layer in plain.layers)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(x, training=False)), want,
                               **TOLERANCE)


@pytest.mark.parametrize("shape", [(6, 5, 5, 3), (6, 5)])
def test_native_batch_norm_under_mixed_bfloat16_matches_keras(shape):
    """Under `mixed_bfloat16` the native layer takes the bfloat16 input as it is (PyTorch's
    kernel accumulates in float32); outputs and the input's gradient agree with Keras's
    float32 computation to bfloat16's rounding, the float32 statistics to 1e-5."""
    x = (np.random.default_rng(0).standard_normal(shape) * 3 + 1).astype("float32")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        native = NativeBatchNormalization(momentum=0.9, epsilon=1e-5)
    finally:
        keras.config.set_dtype_policy("float32")
    probe = np.random.default_rng(1).standard_normal(shape).astype("float32")
    results = []
    for layer in (plain, native):
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]).astype("float32"))
        values = [keras.ops.convert_to_numpy(layer(x, training=False)).astype("float32")]

        def fn(tensors, layer=layer):
            out, _ = layer.stateless_call(
                [v.value for v in layer.trainable_variables],
                [v.value for v in layer.non_trainable_variables], tensors[0], training=True,
            )
            return keras.ops.sum(keras.ops.multiply(keras.ops.cast(out, "float32"), probe))

        _, (grad,) = gradients(fn, [x])
        out = layer(x, training=True)
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
        values += [keras.ops.convert_to_numpy(out).astype("float32"), grad]
        values += [keras.ops.convert_to_numpy(v) for v in (layer.moving_mean,
                                                           layer.moving_variance)]
        results.append(values)
    for index, (got, want) in enumerate(zip(results[1], results[0])):
        bound = 1e-5 if index >= 3 else 2 ** -7  # bfloat16 keeps 8 significant bits
        assert relative_error(got, want) < bound, index


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="native kernels: torch only")
def test_native_layers_skip_keras_call_inside_a_functional_model(monkeypatch):
    """A functional model passes `training` (and BatchNorm `mask=None`) to each layer: the
    native layers must still go straight to `call` (the speed of the torch step rests on it)."""
    native = to_native_layers(encoder())
    x = images()
    native(x, training=True)  # built
    seen = []
    original = keras.layers.Layer.__call__

    def counting(layer, *args, **kwargs):
        seen.append(type(layer))
        return original(layer, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counting)
    native(x, training=True)
    native_types = (NativeConv2D, NativeBatchNormalization, NativeMaxPooling2D)
    assert keras.layers.ReLU in seen  # counted at all
    assert not [kind for kind in seen if issubclass(kind, native_types)]


def test_padding_that_is_a_model_output_is_not_folded():
    inputs = keras.Input((8, 8, 2))
    padded = keras.layers.ZeroPadding2D(1, name="pad")(inputs)
    conv = keras.layers.Conv2D(3, 3, strides=2, name="conv")(padded)
    model = keras.Model(inputs, [padded, conv])
    native = to_native_layers(model)
    assert "pad" in [layer.name for layer in native.layers]
    assert native.get_layer("conv").fused_padding is None
    x = images(8)
    for got, want in zip(native(x), model(x)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(want), **TOLERANCE)


def test_sequential_with_a_folded_padding_is_refused_on_export():
    pad = keras.layers.ZeroPadding2D(1).get_config()
    model = keras.Sequential([keras.Input((8, 8, 2)),
                              NativeConv2D(3, 3, strides=2, fused_padding=pad, name="conv")])
    with pytest.raises(ValueError) as error:
        to_keras_layers(model)
    assert str(error.value) == (
        "`model` is a Sequential model with NativeConv2D layers that hold a folded "
        "ZeroPadding2D, which a Sequential clone cannot put back; received layers ['conv']. "
        "Build it as a functional model."
    )
