"""The conv formulations that `benchmarks/conv_gradients.py` times compute the same thing.

The benchmark compares the time of each backend's own 3x3 convolution against two rewrites of
it; the comparison means something only if all three give the same output and the same two
gradients. Checked here against a float64 NumPy convolution, under every backend.
"""

import keras
import numpy as np
import pytest

from benchmarks import conv_gradients


def reference(x, kernel, dy):
    """Float64 'same' 3x3 conv, its input gradient and its kernel gradient, by loops."""
    x, kernel, dy = (np.asarray(a, np.float64) for a in (x, kernel, dy))
    batch, height, width, _ = x.shape
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    y = np.zeros(dy.shape)
    padded_gradient = np.zeros(padded.shape)
    kernel_gradient = np.zeros(kernel.shape)
    for i in range(3):
        for j in range(3):
            window = padded[:, i : i + height, j : j + width, :]
            y += window @ kernel[i, j]
            padded_gradient[:, i : i + height, j : j + width, :] += dy @ kernel[i, j].T
            kernel_gradient[i, j] = np.einsum("bhwc,bhwd->cd", window, dy)
    return y, padded_gradient[:, 1:-1, 1:-1, :], kernel_gradient


@pytest.mark.parametrize("name", sorted(conv_gradients.FORMULATIONS))
@pytest.mark.parametrize("side,channels", [(5, 3), (2, 4)])
def test_formulation_matches_reference(name, side, channels):
    rng = np.random.default_rng(side)
    x = rng.standard_normal((2, side, side, channels)).astype("float32")
    kernel = rng.standard_normal((3, 3, channels, channels + 1)).astype("float32")
    dy = rng.standard_normal((2, side, side, channels + 1)).astype("float32")
    expected = reference(x, kernel, dy)
    functions = conv_gradients._gradient_functions(conv_gradients.FORMULATIONS[name])
    for (prepare, timed), want in zip(functions, expected):
        got = timed(*prepare(*(keras.ops.convert_to_tensor(a) for a in (x, kernel, dy))))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-4, atol=1e-4)


def test_conv_shapes_follow_the_small_resnet():
    # 4 stride-1 convs in stage 1 (after the stem), 3 in each later stage, per resolution.
    assert conv_gradients.conv_shapes(10) == [
        (20, 28, 16, 4), (20, 14, 32, 3), (20, 7, 64, 3), (20, 4, 128, 3),
        (40, 14, 16, 4), (40, 7, 32, 3), (40, 4, 64, 3), (40, 2, 128, 3),
    ]


@pytest.mark.parametrize("name", sorted(conv_gradients.FORMULATIONS))
def test_formulation_trains_a_layer_as_conv2d_does(name):
    # The whole-step timing puts each formulation into the encoder's layers: the layer's
    # kernel (a Keras variable) must receive the same update as with Keras's own Conv2D.
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype("float32")
    target = np.ones((4, 6, 6, 3), "float32")
    weights = []
    for layer_class in (keras.layers.Conv2D,
                        conv_gradients.conv2d_class(conv_gradients.FORMULATIONS[name])):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 2))
        model = keras.Model(inputs, layer_class(3, 3, padding="same", use_bias=False)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = model.get_weights()[0]
        model.train_on_batch(x, target)
        weights.append((before, model.get_weights()[0]))
    (before, native), (same_start, updated) = weights
    np.testing.assert_array_equal(before, same_start)
    assert np.abs(native - before).max() > 1e-3  # the step moved the kernel
    np.testing.assert_allclose(updated, native, rtol=0, atol=1e-6)
