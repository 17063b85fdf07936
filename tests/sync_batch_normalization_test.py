"""Tests of `SyncBatchNormalization` on one device (distributed runs: distributed_test.py)."""

import os

import autodiff
import keras
import numpy as np
import pytest

from swav_keras import backends
from swav_keras.layers import (
    NativeBatchNormalization,
    SyncBatchNormalization,
    synchronize_batch_normalization,
    to_batch_normalization,
    to_sync_batch_normalization,
)


def reference_batch_norm(x, gamma, beta, epsilon):
    """float64 NumPy batch normalisation over every axis but the last (biased variance)."""
    x = x.astype("float64")
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    variance = x.var(axis=axes)
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta, mean, variance


@pytest.mark.parametrize("shape", [(16, 5), (4, 6, 6, 3)])
def test_training_output_and_moving_statistics_match_numpy(shape):
    x = np.random.default_rng(0).normal(2.0, 3.0, shape).astype("float32")
    layer = SyncBatchNormalization(momentum=0.9, epsilon=1e-5)
    layer.build(shape)
    channels = shape[-1]
    gamma = np.linspace(0.5, 1.5, channels).astype("float32")
    beta = np.linspace(-1, 1, channels).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    expected, mean, variance = reference_batch_norm(x, gamma, beta, 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0.1 * mean,
                               rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               0.9 + 0.1 * variance, rtol=1e-5)


def test_gradients_equal_batch_normalization():
    x = np.random.default_rng(1).normal(size=(8, 4, 4, 3)).astype("float32")
    weights = np.random.default_rng(2).normal(size=(8, 4, 4, 3)).astype("float32")
    sync = SyncBatchNormalization()
    plain = keras.layers.BatchNormalization()

    def loss(layer):
        return lambda xs: keras.ops.sum(
            layer(xs[0], training=True) ** 3 * keras.ops.convert_to_tensor(weights)
        )

    value_sync, (grad_sync,) = autodiff.gradients(loss(sync), [x])
    value_plain, (grad_plain,) = autodiff.gradients(loss(plain), [x])
    np.testing.assert_allclose(value_sync, value_plain, rtol=1e-5)
    np.testing.assert_allclose(grad_sync, grad_plain, atol=1e-4)


def test_inference_uses_moving_statistics():
    layer = SyncBatchNormalization(epsilon=1e-5)
    x = np.full((4, 2), 3.0, "float32")
    out = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(out, 3.0 / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_all_reduces_two_c_plus_one_values(monkeypatch):
    adapter = backends.active()
    sizes = []

    def recording(x):
        sizes.append(int(np.prod(tuple(x.shape))))
        return x

    monkeypatch.setattr(adapter, "differentiable_all_reduce_sum", recording)
    SyncBatchNormalization()(np.ones((6, 5, 5, 7), "float32"), training=True)
    assert sizes == [7 + 1, 7]  # channel sums and the count, then squared deviations


def test_rejects_synchronized_and_renorm():
    with pytest.raises(ValueError, match=r"does not take `synchronized=True`.*received "
                                         r"synchronized=True\."):
        SyncBatchNormalization(synchronized=True)
    with pytest.raises(ValueError, match=r"does not support batch renormalisation; received "
                                         r"renorm=True\."):
        SyncBatchNormalization(renorm=True)


def _small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.8)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)


def test_conversion_round_trip_keeps_weights_and_outputs(tmp_path):
    model = _small_model()
    x = np.random.default_rng(3).normal(size=(4, 8, 8, 1)).astype("float32")
    model(x, training=True)  # moving statistics away from their initial values
    synced = to_sync_batch_normalization(model)
    kinds = [type(layer) for layer in synced.layers]
    assert SyncBatchNormalization in kinds
    assert [w.shape for w in synced.weights] == [w.shape for w in model.weights]
    assert synced.layers[2].momentum == 0.8
    for training in (False, True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(synced(x, training=training)),
            keras.ops.convert_to_numpy(model(x, training=training)),
            atol=1e-5,
        )
    plain = to_batch_normalization(synced)
    assert not any(isinstance(layer, SyncBatchNormalization) for layer in plain.layers)
    # The exported model is saved and reloaded with plain Keras classes only.
    path = os.path.join(tmp_path, "plain.keras")
    plain.save(path)
    reloaded = keras.saving.load_model(path, custom_objects={}, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x, training=False)),
        keras.ops.convert_to_numpy(synced(x, training=False)),
        atol=1e-5,
    )


def test_serialises_with_its_config(tmp_path):
    inputs = keras.Input((5,))
    outputs = SyncBatchNormalization(momentum=0.7, epsilon=1e-3)(inputs)
    model = keras.Model(inputs, outputs)
    path = os.path.join(tmp_path, "sync.keras")
    model.save(path)
    layer = keras.saving.load_model(path).layers[1]
    assert isinstance(layer, SyncBatchNormalization)
    assert (layer.momentum, layer.epsilon) == (0.7, 1e-3)


def test_synchronize_in_place_reads_global_statistics_and_keeps_the_class(
        monkeypatch, tmp_path):
    model = _small_model()
    x = np.random.default_rng(4).normal(size=(4, 8, 8, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=True))
    model.layers[2].moving_mean.assign(np.zeros(4, "float32"))
    assert synchronize_batch_normalization(model) == 1
    sizes = []

    def recording(values):
        sizes.append(int(np.prod(tuple(values.shape))))
        return values

    monkeypatch.setattr(backends.active(), "differentiable_all_reduce_sum", recording)
    out = keras.ops.convert_to_numpy(model(x, training=True))
    assert sizes == [4 + 1, 4]  # the statistics went through the all-reduce
    np.testing.assert_allclose(out, expected, atol=1e-5)  # one replica: the same outputs
    assert type(model.layers[2]) is keras.layers.BatchNormalization
    path = os.path.join(tmp_path, "synced.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, custom_objects={}, safe_mode=True)
    assert type(reloaded.layers[2]) is keras.layers.BatchNormalization


def test_synchronize_covers_native_and_nested_layers(monkeypatch):
    inner_inputs = keras.Input((3,))
    inner = keras.Model(inner_inputs, NativeBatchNormalization()(inner_inputs))
    inputs = keras.Input((3,))
    model = keras.Model(inputs, SyncBatchNormalization()(inner(inputs)))
    assert synchronize_batch_normalization(model) == 2
    calls = []
    monkeypatch.setattr(backends.active(), "differentiable_all_reduce_sum",
                        lambda values: calls.append(1) or values)
    model(np.random.default_rng(5).normal(size=(6, 3)).astype("float32"), training=True)
    assert len(calls) == 4  # two reductions for each of the two layers


def test_synchronize_refuses_renormalisation():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(renorm=True, name="bn")(inputs))
    with pytest.raises(ValueError, match=r"^Cannot synchronise BatchNorm layer 'bn': it uses "
                                         r"synchronized=True or renorm=True; received "
                                         r"synchronized=False, renorm=True\.$"):
        synchronize_batch_normalization(model)
