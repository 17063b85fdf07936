"""Tests of `KNNMonitor` (per-epoch kNN top-1 in the logs) and of `encode`."""

import csv
import math

import keras
import numpy as np
import pytest

from swav_keras.callbacks import KNNMonitor
from swav_keras.evaluation import encode


def _numpy_knn_top1(train, train_labels, test, test_labels, k, temperature):
    """Independent reference: cosine similarities, k nearest, majority and weighted votes."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    similarity = test.astype("float64") @ train.T.astype("float64")
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    majority, weighted = [], []
    for row in similarity:
        nearest = np.argsort(-row, kind="stable")[:k]
        votes = np.bincount(train_labels[nearest], minlength=classes)
        weights = np.bincount(train_labels[nearest], np.exp(row[nearest] / temperature),
                              minlength=classes)
        majority.append(np.argmax(votes))
        weighted.append(np.argmax(weights))
    return np.mean(np.array(majority) == test_labels), np.mean(np.array(weighted) == test_labels)


def _data(seed, n):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    images = centres[labels] + rng.normal(0, 2.5, (n, 4))
    return images.astype("float32"), labels


def _model_with_encoder():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh")])
    model = keras.Model(inputs, keras.layers.Dense(1)(encoder(inputs)))
    model.encoder = encoder
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_logs_the_knn_top1_of_the_encoder_on_measured_epochs_and_nan_between(tmp_path):
    model = _model_with_encoder()
    train, test = _data(0, 200), _data(1, 60)
    monitor = KNNMonitor(train, test, k=5, temperature=0.1, every_epochs=2, verbose=0)
    path = str(tmp_path / "log.csv")
    x, y = _data(2, 64)
    history = model.fit(x, y.astype("float32"), epochs=3, batch_size=16, verbose=0,
                        callbacks=[monitor, keras.callbacks.CSVLogger(path)])
    weighted = history.history["knn_weighted"]
    majority = history.history["knn_majority"]
    assert math.isnan(weighted[0]) and math.isnan(majority[0])  # epoch 1: not measured
    # Epoch 2 (every 2) and epoch 3 (the last) are measured; the last matches NumPy.
    assert not math.isnan(weighted[1]) and not math.isnan(weighted[2])
    expected = _numpy_knn_top1(
        model.encoder.predict(train[0], verbose=0), train[1],
        model.encoder.predict(test[0], verbose=0), test[1], k=5, temperature=0.1,
    )
    assert majority[2] == pytest.approx(expected[0], abs=1e-9)
    assert weighted[2] == pytest.approx(expected[1], abs=1e-9)
    assert expected[1] > 0.5  # the clusters are separable: the figure is not chance
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [row["knn_weighted"] for row in rows][0] == "nan"
    assert float(rows[2]["knn_weighted"]) == pytest.approx(weighted[2])


def test_an_explicit_encoder_is_measured_and_a_model_without_one_is_refused(capsys):
    train, test = _data(0, 40), _data(1, 20)
    model = _model_with_encoder()
    encoder = model.encoder
    del model.encoder
    logs = {}
    monitor = KNNMonitor(train, test, k=3, encoder=encoder, verbose=1)
    monitor.set_model(model)
    monitor.on_epoch_end(0, logs)
    assert 0.0 <= logs["knn_weighted"] <= 1.0 and 0.0 <= logs["knn_majority"] <= 1.0
    assert capsys.readouterr().out.startswith(
        f"\nEpoch 1: kNN (k=3, 40 -> 20 images) majority {logs['knn_majority']:.2%}, "
        f"weighted {logs['knn_weighted']:.2%} ("
    )
    bare = KNNMonitor(train, test, k=3, verbose=0)
    bare.set_model(model)
    with pytest.raises(ValueError) as info:
        bare.on_epoch_end(0, {})
    assert str(info.value) == (
        "KNNMonitor needs `encoder=` or a model with an `encoder` attribute (a "
        "swav_keras.SwAV); received a model of type Functional."
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(train_data=np.zeros((4, 2))), TypeError,
         "`train_data` must be a tuple (images, labels); received a ndarray."),
        (dict(test_data=(np.zeros((4, 2)),)), TypeError,
         "`test_data` must be a tuple (images, labels); received a tuple of length 1."),
        (dict(test_data=(np.zeros((0, 2)), np.zeros(0, "int64"))), ValueError,
         "`test_data[0]` must be an array [N, ...] with N >= 1; "
         "received test_data[0].shape=(0, 2)."),
        (dict(train_data=(np.zeros((4, 2)), np.zeros(3, "int64"))), ValueError,
         "`train_data[1]` must hold one label per row of `train_data[0]` (4); "
         "received len(train_data[1])=3."),
        (dict(k=5), ValueError,
         "`k` must be at most the number of training images (4); received k=5."),
        (dict(every_epochs=0), ValueError,
         "`every_epochs` must be a positive integer; received every_epochs=0."),
        (dict(temperature=0.0), ValueError,
         "`temperature` must be a positive number; received temperature=0.0."),
        (dict(encoder="encoder.keras"), TypeError,
         "`encoder` must be a keras.Model or None; received encoder of type str."),
        (dict(verbose=2), ValueError, "`verbose` must be 0 or 1; received verbose=2."),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, error, message):
    args = dict(train_data=(np.zeros((4, 2)), np.arange(4)),
                test_data=(np.zeros((2, 2)), np.arange(2)), k=2)
    with pytest.raises(error) as info:
        KNNMonitor(**{**args, **kwargs})
    assert str(info.value) == message


def test_get_config_returns_the_settings():
    monitor = KNNMonitor((np.ones((4, 2)), np.arange(4)), (np.ones((2, 2)), np.arange(2)),
                         k=3, temperature=0.2, every_epochs=4, batch_size=8, verbose=0)
    assert monitor.get_config() == {"k": 3, "temperature": 0.2, "every_epochs": 4,
                                    "batch_size": 8, "verbose": 0}


def test_encode_calls_the_encoder_in_inference_mode_batch_by_batch():
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.9),
    ])
    images = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(encoder(images, training=False))
    features = encode(encoder, images, batch_size=3)  # 4 calls, the last of one image
    assert features.dtype == np.float32 and features.shape == (10, 4)
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"^`images` must be an array \[N, \.\.\.\] with N >= 1; "
                                         r"received images.shape=\(0, 3\)\.$"):
        encode(encoder, images[:0])
    with pytest.raises(ValueError, match="^`batch_size` must be a positive integer"):
        encode(encoder, images, batch_size=0)
