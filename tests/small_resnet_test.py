"""Tests of `swav_keras.backbones.SmallResNet`: shapes, size, normalisation, saving, errors."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.backbones.small_resnet import SmallResNet, last_map_size


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_any_size_and_channels(channels):
    model = SmallResNet(width=2, input_shape=(None, None, channels))
    assert model.output_shape == (None, 16)
    assert model.name == "small_resnet"
    for size in [(28, 28), (14, 14), (32, 32), (7, 9), (1, 1)]:
        features = model(_images((2, *size, channels)), training=False)
        features = keras.ops.convert_to_numpy(features)
        assert features.shape == (2, 16)
        assert np.all(np.isfinite(features)) and np.all(features >= 0)  # pooled after a ReLU


def test_fixed_input_size_and_stage_resolutions():
    model = SmallResNet(width=2, input_shape=(28, 28, 1))
    # 3x3 stride-1 stem and no max-pool: 28 -> 28, 14, 7, 4 (ceil, as torchvision's padding 1).
    for stage, size in zip(range(2, 6), (28, 14, 7, 4)):
        output = model.get_layer(f"conv{stage}_block2_out").output
        assert output.shape == (None, size, size, 2 ** (stage - 1))
    assert model.get_layer("avg_pool").output.shape == (None, 16)


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_fewer_stages_equal_the_pooled_output_of_that_stage(stages):
    keras.utils.set_random_seed(4)
    full = SmallResNet(width=2, input_shape=(None, None, 1), mean=[72.9], std=[90.0])
    short = SmallResNet(width=2, input_shape=(None, None, 1), mean=[72.9], std=[90.0],
                        stages=stages)
    assert short.output_shape == (None, 2 * 2 ** (stages - 1))
    kept = [layer.name for layer in short.layers]
    assert kept == [layer.name for layer in full.layers][: len(kept) - 1] + ["avg_pool"]
    assert f"conv{stages + 2}_block1_1_conv" not in kept
    for layer in short.layers:  # the kept stages' weights, by name
        layer.set_weights(full.get_layer(layer.name).get_weights())
    images = _images((3, 28, 28, 1), seed=5)
    cut = keras.Model(full.inputs, full.get_layer(f"conv{stages + 1}_block2_out").output)
    maps = keras.ops.convert_to_numpy(cut(images, training=False))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(short(images, training=False)), maps.mean(axis=(1, 2)),
        rtol=1e-5, atol=1e-6,
    )


def _torchvision_resnet18_parameters(width=64, channels=3):
    """torchvision resnet18 without its fc and with a 3x3 stem, counted from layer shapes."""

    def conv(k, cin, cout):
        return k * k * cin * cout

    def bn(c):
        return 2 * c  # weight and bias; running statistics are buffers, not parameters

    count = conv(3, channels, width) + bn(width)
    cin = width
    for cout in (width, 2 * width, 4 * width, 8 * width):
        for block in range(2):
            count += conv(3, cin, cout) + bn(cout) + conv(3, cout, cout) + bn(cout)
            if block == 0 and cin != cout:  # downsample: 1x1 conv + BN
                count += conv(1, cin, cout) + bn(cout)
            cin = cout
    return count


@pytest.fixture(scope="module")
def resnet18():
    keras.utils.set_random_seed(0)
    return SmallResNet(width=64)


def test_parameter_count_matches_torchvision_resnet18(resnet18):
    expected = _torchvision_resnet18_parameters()
    # torchvision's resnet18 has 11,689,512 parameters: minus fc (512 * 1000 + 1000) and the
    # 7x7 stem (7 * 7 * 3 * 64) plus a 3x3 one (3 * 3 * 3 * 64).
    assert expected == 11_689_512 - 513_000 - 9_408 + 1_728
    model = resnet18
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    assert trainable == expected
    batchnorm_channels = sum(
        layer.gamma.shape[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert model.count_params() == expected + 2 * batchnorm_channels  # moving mean, variance
    assert model.output_shape[-1] == 512


def test_pytorch_batchnorm_and_initialisation(resnet18):
    model = resnet18
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 16 + 3
    assert not any(layer.use_bias for layer in convs)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv5_block2_2_conv").kernel)
    # He-normal fan_out: std = sqrt(2 / (3 * 3 * 512)), untruncated.
    assert kernel.std() == pytest.approx(math.sqrt(2 / (9 * 512)), rel=0.01)
    assert np.abs(kernel).max() > 3 * kernel.std()


def test_normalisation_layer_takes_raw_pixels():
    mean, std = [120.0, 100.0, 80.0], [60.0, 50.0, 40.0]
    keras.utils.set_random_seed(1)
    normalised = SmallResNet(width=2, mean=mean, std=std)
    plain = SmallResNet(width=2)
    plain.set_weights(normalised.get_weights())
    assert normalised.layers[1].name == "normalization"
    raw = _images((3, 12, 12, 3))
    scaled = (raw - np.array(mean, "float32")) / np.array(std, "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(normalised(raw, training=False)),
        keras.ops.convert_to_numpy(plain(scaled, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    # And the layer does something: the plain model on raw pixels differs.
    assert not np.allclose(
        keras.ops.convert_to_numpy(plain(raw, training=False)),
        keras.ops.convert_to_numpy(normalised(raw, training=False)),
        atol=1e-3,
    )


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (9, 6)])
def test_strided_shortcut_is_a_strided_1x1_convolution(size):
    """The shortcut subsamples then convolves: a stride-2 "same" 1x1 conv, pixel for pixel."""
    model = SmallResNet(width=4, input_shape=(None, None, 1))
    subsample = model.get_layer("conv3_block1_0_subsample")
    conv = model.get_layer("conv3_block1_0_conv")
    x = np.random.default_rng(1).normal(size=(2, *size, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(conv(subsample(x)))
    kernel = keras.ops.convert_to_numpy(conv.kernel)  # [1, 1, 4, 8]
    # NumPy: a 1x1 kernel at stride 2 with "same" padding (none needed) reads pixels 0, 2, ...
    expected = np.einsum("bhwc,cf->bhwf", x[:, ::2, ::2, :], kernel[0, 0])
    assert got.shape == (2, math.ceil(size[0] / 2), math.ceil(size[1] / 2), 8)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


FEW_CHANNELS_TRAINING = """
import keras, numpy as np
from swav_keras.backbones.small_resnet import SmallResNet
keras.utils.set_random_seed(0)
model = SmallResNet(width=4, input_shape=(28, 28, 1))
model.compile(optimizer="sgd", loss="mse")
x = np.random.default_rng(0).uniform(0, 255, (64, 28, 28, 1)).astype("float32")
history = model.fit(x, np.zeros((64, 32), "float32"), batch_size=32, epochs=2, verbose=0)
assert np.all(np.isfinite(history.history["loss"])), history.history
print("trained")
"""


def test_training_with_fewer_channels_than_a_simd_block():
    """Width 4 (stride-2 shortcuts on 4 and 8 channels) trains without corrupting memory.

    Run in a fresh process: a strided 1x1 conv on so few channels used to send PyTorch's
    CPU backward into oneDNN#6035 (heap corruption: a crash, an abort or a hang).
    """
    run = subprocess.run([sys.executable, "-c", FEW_CHANNELS_TRAINING], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert run.returncode == 0 and "trained" in run.stdout, run.stderr[-3000:]


def test_keras_file_roundtrip(tmp_path):
    keras.utils.set_random_seed(2)
    model = SmallResNet(width=2, input_shape=(None, None, 1), mean=[72.9], std=[90.0])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_images((8, 16, 16, 1)), np.ones((8, 16), "float32"), verbose=0)
    path = os.path.join(tmp_path, "encoder.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == "small_resnet"
    images = _images((4, 20, 20, 1), seed=3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"width": 0}, ValueError, "`width` must be a positive integer; received width=0."),
        ({"width": 2.5}, TypeError, "`width` must be an integer; received width=2.5."),
        ({"stages": 0}, ValueError, "`stages` must be an integer in 1-4; received stages=0."),
        ({"stages": 5}, ValueError, "`stages` must be an integer in 1-4; received stages=5."),
        ({"stages": 3.0}, TypeError, "`stages` must be an integer; received stages=3.0."),
        (
            {"input_shape": (None, None)},
            ValueError,
            "`input_shape` must be a tuple (height, width, channels) of positive integers, "
            "height and width may be None; received input_shape=(None, None).",
        ),
        (
            {"input_shape": (32, 32, None)},
            ValueError,
            "`input_shape` must be a tuple (height, width, channels) of positive integers, "
            "height and width may be None; received input_shape=(32, 32, None).",
        ),
        (
            {"input_shape": (0, 32, 3)},
            ValueError,
            "`input_shape` must be a tuple (height, width, channels) of positive integers, "
            "height and width may be None; received input_shape=(0, 32, 3).",
        ),
        (
            {"mean": [0.5], "std": [0.2, 0.2, 0.2]},
            ValueError,
            "`mean` must be a sequence of 3 number(s), one per input channel; "
            "received mean=[0.5].",
        ),
        (
            {"mean": [0.5] * 3, "std": 0.2},
            ValueError,
            "`std` must be a sequence of 3 number(s), one per input channel; received std=0.2.",
        ),
        (
            {"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]},
            ValueError,
            "`std` must hold positive numbers; received std=[0.2, 0.0, 0.2].",
        ),
        (
            {"mean": [0.5] * 3},
            ValueError,
            "`std` must be given together with `mean`; received std=None.",
        ),
    ],
)
def test_error_messages(kwargs, error, message):
    with pytest.raises(error) as info:
        SmallResNet(**kwargs)
    assert str(info.value) == message


def test_corner_pooling_keeps_a_two_by_two_grid_of_the_last_map():
    keras.utils.set_random_seed(0)
    encoder = SmallResNet(4, (None, None, 1), stages=3, pooling="corners")
    assert encoder.output_shape == (None, 4 * 16)
    assert encoder.layers[-1].name == "corner_pool"
    images = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype("float32")
    last_map = keras.Model(encoder.inputs, encoder.layers[-1].input)(images)
    last_map = keras.ops.convert_to_numpy(last_map)
    assert last_map.shape == (3, 7, 7, 16)
    got = keras.ops.convert_to_numpy(encoder(images))
    np.testing.assert_allclose(got, ref.sliding_average(last_map, 6, 6), rtol=1e-4, atol=1e-5)
    # The same layers with a global average: the weights are the same, the output the mean.
    average = SmallResNet(4, (None, None, 1), stages=3)
    average.set_weights(encoder.get_weights())
    own = keras.ops.convert_to_numpy(average(images))
    np.testing.assert_allclose(own, last_map.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    # Small crops (14x14: a 4x4 map) give the same number of features.
    assert tuple(encoder(images[:, :14, :14]).shape) == (3, 64)


def test_corner_pooled_encoder_round_trips_through_keras_file(tmp_path):
    encoder = SmallResNet(4, (None, None, 1), mean=[72.9], std=[90.0], stages=2,
                          pooling="corners")
    images = np.random.default_rng(1).uniform(0, 255, (2, 12, 12, 1)).astype("float32")
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)),
                               keras.ops.convert_to_numpy(encoder(images)), rtol=1e-5)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError) as error:
        SmallResNet(4, pooling="max")
    assert str(error.value) == (
        "`pooling` must be one of ('avg', 'corners', 'grid'); received pooling='max'."
    )


def test_grid_pooling_averages_disjoint_cells_of_the_last_map(tmp_path):
    keras.utils.set_random_seed(0)
    encoder = SmallResNet(4, (None, None, 1), mean=[72.9], std=[90.0], stages=3,
                          pooling="grid", grid_size=3)
    assert encoder.output_shape == (None, 9 * 16)
    assert encoder.layers[-1].name == "grid_pool"
    images = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    last_map = keras.ops.convert_to_numpy(
        keras.Model(encoder.inputs, encoder.layers[-1].input)(images))
    assert last_map.shape == (3, 7, 7, 16)
    got = keras.ops.convert_to_numpy(encoder(images))
    np.testing.assert_allclose(got, ref.grid_average(last_map, 3), rtol=1e-4, atol=1e-5)
    # Small crops (14x14: a 4x4 map) give the same number of features.
    assert tuple(encoder(images[:, :14, :14]).shape) == (3, 144)
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)), got, rtol=1e-5)


def test_grid_size_without_grid_pooling_is_refused():
    with pytest.raises(ValueError) as error:
        SmallResNet(4, pooling="corners", grid_size=3)
    assert str(error.value) == (
        "`grid_size` applies to pooling='grid' only; received grid_size=3 with "
        "pooling='corners'."
    )
    with pytest.raises(ValueError) as error:
        SmallResNet(4, pooling="grid", grid_size=0)
    assert str(error.value) == "`grid_size` must be a positive integer; received grid_size=0."


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_last_map_size_is_the_size_of_the_encoders_last_map(stages):
    encoder = SmallResNet(2, (None, None, 1), stages=stages)
    last_map = keras.Model(encoder.inputs, encoder.layers[-1].input)
    for size in (1, 2, 3, 5, 7, 8, 14, 15, 28, 32):
        got = last_map(np.zeros((1, size, size, 1), "float32")).shape
        assert tuple(got[1:3]) == (last_map_size(size, stages),) * 2, size


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 0, "stages": 3},
     "`image_size` must be a positive integer; received image_size=0."),
    ({"image_size": 28, "stages": 0}, "`stages` must be an integer in 1-4; received stages=0."),
])
def test_last_map_size_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        last_map_size(**kwargs)
    assert str(error.value) == message
