"""Tests of `swav_keras.evaluation.precise_batch_norm` against NumPy, run under every backend."""

import keras
import numpy as np
import pytest

from swav_keras.evaluation import precise_batch_norm

EPSILON = 1e-3  # keras.layers.BatchNormalization's default


def _model(seed=0):
    """Dense -> BN -> ReLU -> Dense -> BN: two BatchNorms, the second fed by the first."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    x = keras.layers.Dense(6, name="dense_1")(inputs)
    x = keras.layers.BatchNormalization(name="bn_1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dense(4, name="dense_2")(x)
    outputs = keras.layers.BatchNormalization(name="bn_2")(x)
    model = keras.Model(inputs, outputs)
    for name in ("bn_1", "bn_2"):  # non-trivial affine parameters
        layer = model.get_layer(name)
        rng = np.random.default_rng(len(name) + seed)
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(size=layer.beta.shape).astype("float32"))
    return model


def _weights(model, name):
    return [np.asarray(keras.ops.convert_to_numpy(w), "float64")
            for w in model.get_layer(name).weights]


def batch_mode_forward(model, images):
    """float64 NumPy forward pass, each BN normalising by this batch: `(bn_1 input, bn_2
    input, output)`."""
    w1, b1 = _weights(model, "dense_1")
    g1, beta1, _, _ = _weights(model, "bn_1")
    w2, b2 = _weights(model, "dense_2")
    g2, beta2, _, _ = _weights(model, "bn_2")

    def normalise(h, gamma, beta):
        return (h - h.mean(0)) / np.sqrt(h.var(0) + EPSILON) * gamma + beta

    first = np.asarray(images, "float64") @ w1 + b1
    second = np.maximum(normalise(first, g1, beta1), 0) @ w2 + b2
    return first, second, normalise(second, g2, beta2)


def reference_statistics(model, images, batch_size):
    """float64 NumPy: each BN normalises by its batch; population statistics pooled exactly."""
    batches = [batch_mode_forward(model, images[start : start + batch_size])
               for start in range(0, len(images), batch_size)]
    first, second = (np.concatenate([batch[i] for batch in batches]) for i in (0, 1))
    return {"bn_1": (first.mean(0), first.var(0)), "bn_2": (second.mean(0), second.var(0))}


def _statistics(model, name):
    layer = model.get_layer(name)
    return (keras.ops.convert_to_numpy(layer.moving_mean),
            keras.ops.convert_to_numpy(layer.moving_variance))


@pytest.mark.parametrize("num_images,batch_size", [(96, 32), (100, 32), (7, 256)])
def test_statistics_equal_numpy_population_statistics(num_images, batch_size):
    # 100 / 32 leaves a last batch of 4: pooling weights every batch by its size.
    images = np.random.default_rng(1).normal(2.0, 3.0, (num_images, 5)).astype("float32")
    model = _model()
    used = precise_batch_norm(model, images, batch_size=batch_size)
    assert used == num_images
    expected = reference_statistics(model, images, batch_size)
    for name, (mean, variance) in expected.items():
        got_mean, got_variance = _statistics(model, name)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got_variance, variance, rtol=1e-4, atol=1e-4)


def test_pooled_variance_is_not_the_mean_of_batch_variances():
    # Batches with different means: the population variance holds the spread of the means,
    # which an average of per-batch variances would miss.
    rng = np.random.default_rng(2)
    images = np.concatenate([rng.normal(-4, 1, (32, 5)), rng.normal(4, 1, (32, 5))])
    model = _model()
    precise_batch_norm(model, images.astype("float32"), batch_size=32)
    w1, b1 = _weights(model, "dense_1")
    h = images @ w1 + b1
    batch_average = (h[:32].var(0) + h[32:].var(0)) / 2
    _, variance = _statistics(model, "bn_1")
    np.testing.assert_allclose(variance, h.var(0), rtol=1e-4)
    assert variance.sum() > 3 * batch_average.sum()


def test_num_examples_iterables_and_untouched_weights():
    images = np.random.default_rng(3).normal(size=(80, 5)).astype("float32")
    model = _model()
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    momenta = [layer.momentum for layer in model.layers if hasattr(layer, "momentum")]
    used = precise_batch_norm(model, images, batch_size=16, num_examples=40)
    assert used == 40
    expected = reference_statistics(model, images[:40], 16)
    np.testing.assert_allclose(_statistics(model, "bn_2")[1], expected["bn_2"][1], rtol=1e-4)
    for old, new in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))
    assert [layer.momentum for layer in model.layers if hasattr(layer, "momentum")] == momenta

    # An iterable of (images, labels) batches, cut inside a batch, gives the same figures.
    other = _model()
    batches = [(images[i : i + 16], np.zeros(16)) for i in range(0, 80, 16)]
    assert precise_batch_norm(other, batches, num_examples=40) == 40
    for name in ("bn_1", "bn_2"):
        np.testing.assert_allclose(_statistics(other, name), _statistics(model, name), rtol=1e-5)


def test_frozen_nested_encoder_stays_frozen_and_inference_uses_new_statistics():
    inner = _model()
    inputs = keras.Input((5,))
    outer = keras.Model(inputs, inner(inputs))
    outer.trainable = False
    images = np.random.default_rng(4).normal(5.0, 2.0, (64, 5)).astype("float32")
    precise_batch_norm(outer, images, batch_size=64)
    assert not outer.trainable and not inner.get_layer("bn_2").trainable
    # One batch of all the images: inference now equals training-mode output on it.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outer(images, training=False)),
        batch_mode_forward(inner, images)[2], rtol=1e-3, atol=1e-3,
    )


def test_failure_restores_everything():
    model = _model()
    before = {name: _statistics(model, name) for name in ("bn_1", "bn_2")}

    def interrupted():
        yield np.ones((8, 5), "float32")
        raise RuntimeError("interrupted")  # after one batch has overwritten the statistics

    with pytest.raises(RuntimeError, match="interrupted"):
        precise_batch_norm(model, interrupted())
    with pytest.raises(ValueError):  # a batch of the wrong size, from the model itself
        precise_batch_norm(model, [np.ones((8, 5), "float32"), np.ones((8, 3), "float32")])
    for name, (mean, variance) in before.items():
        np.testing.assert_array_equal(_statistics(model, name)[0], mean)
        np.testing.assert_array_equal(_statistics(model, name)[1], variance)
        assert model.get_layer(name).momentum == 0.99


def test_errors():
    model = _model()
    images = np.zeros((4, 5), "float32")
    with pytest.raises(TypeError, match=r"`encoder` must be a keras.Model or layer; "
                                        r"received encoder of type str"):
        precise_batch_norm("encoder.keras", images)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer; "
                                         r"received batch_size=0"):
        precise_batch_norm(model, images, batch_size=0)
    with pytest.raises(ValueError, match=r"`num_examples` must be a positive integer; "
                                         r"received num_examples=0"):
        precise_batch_norm(model, images, num_examples=0)
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ValueError, match=r"`encoder` \('plain'\) has no BatchNormalization"):
        precise_batch_norm(plain, images)
    with pytest.raises(TypeError, match=r"`images` must be an array of images or an iterable "
                                        r"of batches; received images of type int"):
        precise_batch_norm(model, 3)
    with pytest.raises(ValueError, match=r"`images` must be an array \[N, ...\] with N >= 1; "
                                         r"received images.shape=\(5,\)"):
        precise_batch_norm(model, np.zeros(5))
    with pytest.raises(ValueError, match=r"`images` holds no image"):
        precise_batch_norm(model, [])
