"""Tests of `swav_keras.evaluation.linear_probe`, run under every backend."""

import math

import keras
import numpy as np
import pytest

from swav_keras.evaluation.linear_probe import linear_probe, top_k_accuracy


def _blobs(num_classes=8, dim=16, n=800, scale=1.0, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(num_classes, dim))
    labels = rng.integers(0, num_classes, n)
    features = centres[labels] + rng.normal(size=(n, dim))
    features = (features * scale + offset).astype("float32")
    return (
        features[: n * 3 // 4],
        labels[: n * 3 // 4],
        features[n * 3 // 4 :],
        labels[n * 3 // 4 :],
    )


def _kernel(result):
    return keras.ops.convert_to_numpy(result["classifier"].get_layer("linear").kernel)


def test_separable_blobs_and_cosine_schedule():
    result = linear_probe(*_blobs(), epochs=4, batch_size=64, verbose=0)
    assert result["top1"] >= 0.95
    assert 1.0 >= result["top5"] >= result["top1"]
    expected_lr = [0.15 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    np.testing.assert_allclose(result["history"]["learning_rate"], expected_lr, rtol=1e-6)
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
    assert isinstance(result["top1"], float) and isinstance(result["top5"], float)


def test_badly_scaled_features_are_standardised():
    # Raw-pixel-like scale and offset, one constant feature: still learnt in a few epochs.
    train_x, train_y, test_x, test_y = _blobs(scale=200.0, offset=120.0, seed=1)
    train_x[:, 3] = 17.0
    test_x[:, 3] = 90.0  # unseen value of a feature constant in training: left unscaled
    result = linear_probe(train_x, train_y, test_x, test_y, epochs=3, batch_size=64, verbose=0)
    assert result["top1"] >= 0.95


def test_few_classes_clip_top5():
    result = linear_probe(*_blobs(num_classes=3), epochs=2, batch_size=64, verbose=0)
    assert result["top5"] == 1.0
    assert result["classifier"].output_shape == (None, 3)


def test_deterministic_for_a_seed():
    data = _blobs(seed=2)
    first = linear_probe(*data, epochs=2, batch_size=100, verbose=0, seed=3)
    second = linear_probe(*data, epochs=2, batch_size=100, verbose=0, seed=3)
    other = linear_probe(*data, epochs=2, batch_size=100, verbose=0, seed=4)
    np.testing.assert_array_equal(_kernel(first), _kernel(second))
    assert np.abs(_kernel(first) - _kernel(other)).max() > 1e-4


def test_one_step_matches_sgd_with_coupled_weight_decay():
    """One full-batch step: W1 = W0 - lr (dCE/dW + wd W0) on standardised features, as
    PyTorch's SGD(momentum, weight_decay) takes it; W0 ~ N(0, 0.01) from the seed."""
    train_x, train_y, test_x, test_y = _blobs(num_classes=4, dim=5, n=40, scale=3.0, seed=5)
    lr, wd = 0.2, 0.5
    result = linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=4,
        epochs=1,
        batch_size=len(train_x),
        learning_rate=lr,
        weight_decay=wd,
        verbose=0,
        seed=7,
    )
    w0 = keras.ops.convert_to_numpy(keras.initializers.RandomNormal(stddev=0.01, seed=7)((5, 4)))
    w0 = w0.astype(np.float64)
    x = train_x.astype(np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    logits = x @ w0
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(x)), train_y] -= 1.0
    grad_w = x.T @ probabilities / len(x)
    grad_b = probabilities.mean(axis=0)
    linear = result["classifier"].get_layer("linear")
    np.testing.assert_allclose(_kernel(result), w0 - lr * (grad_w + wd * w0), atol=2e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(linear.bias), -lr * grad_b, atol=2e-6)


def test_classifier_saves_and_loads(tmp_path):
    train_x, train_y, test_x, test_y = _blobs(seed=3)
    result = linear_probe(train_x, train_y, test_x, test_y, epochs=1, verbose=0)
    path = str(tmp_path / "classifier.keras")
    result["classifier"].save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(test_x, verbose=0),
        result["classifier"].predict(test_x, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )
    assert top_k_accuracy(loaded.predict(test_x, verbose=0), test_y) == result["top1"]


def reference_top_k(logits, labels, k):
    """Rank classes by (-logit, class id); a row with NaN or Inf is wrong."""
    correct = []
    for row, label in zip(logits, labels):
        order = np.lexsort((np.arange(len(row)), -row))
        correct.append(np.isfinite(row).all() and label in order[:k])
    return float(np.mean(correct))


@pytest.mark.parametrize("k", [1, 2, 5, 9, 12])
def test_top_k_accuracy_matches_numpy(k):
    rng = np.random.default_rng(k)
    logits = rng.integers(-3, 4, (300, 9)).astype("float32")  # many ties
    logits[:50] += rng.normal(size=(50, 9)).astype("float32")  # and rows without
    logits[7, 2] = np.nan
    logits[8, 0] = np.inf
    labels = rng.integers(0, 9, 300)
    assert top_k_accuracy(logits, labels, k=k) == pytest.approx(reference_top_k(logits, labels, k))


def test_top_k_accuracy_hand_made():
    equal = np.zeros((4, 3), "float32")
    assert top_k_accuracy(equal, np.array([0, 1, 2, 0]), k=1) == 0.5  # only class 0 ranks 1st
    assert top_k_accuracy(equal, np.array([0, 1, 2, 0]), k=2) == 0.75
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    assert top_k_accuracy(logits, np.array([2, 0]), k=1) == 0.5
    assert top_k_accuracy(logits, np.array([2, 0]), k=2) == 1.0


def _probe_error(**overrides):
    train_x, train_y, test_x, test_y = _blobs(n=40)
    kwargs = dict(
        train_features=train_x,
        train_labels=train_y,
        test_features=test_x,
        test_labels=test_y,
        epochs=1,
        verbose=0,
    )
    kwargs.update(overrides)
    with pytest.raises((ValueError, TypeError)) as info:
        linear_probe(**kwargs)
    return str(info.value)


def test_errors():
    assert _probe_error(epochs=0) == "`epochs` must be a positive integer; received epochs=0."
    assert _probe_error(train_labels=np.zeros(29, "int64")) == (
        "`train_labels` must hold one label per row of `train_features` (30); "
        "received len(train_labels)=29."
    )
    assert _probe_error(num_classes=8, test_labels=np.full(10, 9)) == (
        "`test_labels` must hold class ids < num_classes (8); received test_labels[0]=9."
    )
    assert _probe_error(test_features=np.zeros((10, 3), "float32")) == (
        "`test_features` must have as many columns as `train_features` (16); "
        "received test_features.shape=(10, 3)."
    )
    nan = np.zeros((30, 16), "float32")
    nan[4, 1] = np.nan
    assert _probe_error(train_features=nan) == (
        "`train_features` must hold only finite values; received train_features[4, 1]=nan."
    )
    assert _probe_error(standardize="yes") == (
        "`standardize` must be a bool; received standardize='yes'."
    )
    assert _probe_error(momentum=1.5) == "`momentum` must be <= 1; received momentum=1.5."
    assert _probe_error(learning_rate=0) == (
        "`learning_rate` must be a positive number; received learning_rate=0."
    )
    assert _probe_error(weight_decay=-1e-6) == (
        "`weight_decay` must be >= 0; received weight_decay=-1e-06."
    )
    with pytest.raises(ValueError) as info:
        top_k_accuracy(np.zeros(5), np.zeros(5, "int64"))
    assert str(info.value) == "`logits` must be a 2-D array [M, C]; received logits.shape=(5,)."
    with pytest.raises(ValueError) as info:
        top_k_accuracy(np.zeros((5, 2)), np.zeros(4, "int64"))
    assert str(info.value) == (
        "`labels` must hold one label per row of `logits` (5); received len(labels)=4."
    )
    with pytest.raises(ValueError) as info:
        top_k_accuracy(np.zeros((5, 2)), np.zeros(5, "int64"), k=0)
    assert str(info.value) == "`k` must be a positive integer; received k=0."
