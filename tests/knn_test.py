"""Tests of `swav_keras.evaluation.knn` against a float64 NumPy kNN, run under every backend."""

import numpy as np
import pytest

from swav_keras.evaluation.knn import knn_accuracy, knn_classify


def reference_knn(train, train_labels, test, k, temperature, num_classes):
    """Plain float64 kNN: sort each row by (-similarity, index), vote, break ties by rule."""
    train = np.asarray(train, np.float64)
    test = np.asarray(test, np.float64)
    train = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    test = test / np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-12)
    similarity = test @ train.T
    index = np.arange(len(train))
    majority, weighted, ties = [], [], {"count": 0, "kth": 0}
    for row in similarity:
        order = np.lexsort((index, -row))
        nearest = order[:k]
        if k < len(order):
            ties["kth"] += int(row[order[k - 1]] == row[order[k]])  # more at the k-th value
        labels = train_labels[nearest]
        counts = np.bincount(labels, minlength=num_classes)
        votes = np.bincount(
            labels, weights=np.exp(row[nearest] / temperature), minlength=num_classes
        )
        weighted.append(np.flatnonzero(votes >= votes.max() * (1 - 1e-5))[0])
        ties["count"] += int(np.sum(counts == counts.max()) > 1)
        majority.append(np.argmax(counts))  # NumPy's argmax: the first of equal maxima
    return np.array(majority), np.array(weighted), ties


def _blobs(rng, n, dim, classes, spread):
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype("float32"), labels


def _dataset(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "separated":
        x, y = _blobs(rng, 400, 8, 5, 0.2)
    elif kind == "ambiguous":  # overlapping classes: many close and tied counts
        x, y = _blobs(rng, 400, 8, 5, 2.0)
    else:  # "ties": +-1 entries in 16-D, exact similarities in float32, many equal ones
        x = np.sign(rng.normal(size=(400, 16))).astype("float32")
        y = rng.integers(0, 5, 400)
    return x[:300], y[:300], x[300:], y[300:]


@pytest.mark.parametrize("kind", ["separated", "ambiguous", "ties"])
@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (20, 0.07), (20, 0.5)])
def test_matches_numpy_reference(kind, k, temperature):
    train_x, train_y, test_x, _ = _dataset(kind)
    predictions = knn_classify(
        train_x, train_y, test_x, k=k, temperature=temperature, num_classes=5, batch_size=37
    )
    majority, weighted, ties = reference_knn(train_x, train_y, test_x, k, temperature, 5)
    assert predictions["majority"].dtype == np.int64
    np.testing.assert_array_equal(predictions["majority"], majority)
    np.testing.assert_array_equal(predictions["weighted"], weighted)
    # The tie rules are exercised, not only clear cases.
    if kind != "separated" and k in (5, 20):
        assert ties["count"] > 0
    if kind == "ties":
        assert ties["kth"] > 10


def test_ties_at_the_kth_neighbour_take_the_smallest_indices():
    # Every training row is as similar (0.5) to the test row: the k nearest are rows 0..k-1.
    train = np.array([[1, 1, 1, -1], [1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]], "float32")
    test = np.ones((1, 4), "float32")
    labels = np.array([2, 1, 1, 0])
    assert knn_classify(train, labels, test, k=1)["majority"][0] == 2
    assert knn_classify(train[::-1], labels[::-1], test, k=1)["majority"][0] == 0
    # k=2: rows 0 and 1, one vote each for classes 2 and 1, equal weights: smallest id.
    assert knn_classify(train, labels, test, k=2)["majority"][0] == 1
    assert knn_classify(train, labels, test, k=2)["weighted"][0] == 1
    # k=3: classes 2, 1, 1: the count decides.
    assert knn_classify(train, labels, test, k=3)["majority"][0] == 1


def test_hand_made_case():
    def at(degrees):
        radians = np.deg2rad(degrees)
        return [np.cos(radians), np.sin(radians)]

    # Test sample at 45 degrees. Neighbours: class 1 at 44 (cosine 0.9998), class 0 at 10
    # and 80 (cosine 0.819 each); class 1 at 180 is far.
    train = np.array([at(10), at(44), at(80), at(180)], "float32")
    labels = np.array([0, 1, 0, 1])
    predictions = knn_classify(train, labels, np.array([at(45)], "float32"), k=3)
    assert predictions["majority"][0] == 0  # two votes against one
    assert predictions["weighted"][0] == 1  # exp(0.9998/0.07) > 2 exp(0.819/0.07)
    # k=2: one vote each (44 and 10 degrees): the count tie goes to the smaller id, 0.
    predictions = knn_classify(train[::-1], labels[::-1], np.array([at(45)], "float32"), k=2)
    assert predictions["majority"][0] == 0
    assert predictions["weighted"][0] == 1
    # The scale of a feature does not matter (cosine similarity).
    scaled = knn_classify(train * [[3.0], [0.1], [7.0], [1.0]], labels, [at(45)], k=3)
    assert scaled["weighted"][0] == 1


def test_zero_test_vector_is_equally_far_from_all():
    train = np.eye(3, dtype="float32")
    predictions = knn_classify(train, np.array([1, 0, 0]), np.zeros((1, 3), "float32"), k=1)
    assert predictions["majority"][0] == 1  # all tied at 0: row 0 is taken


def test_chunking_does_not_change_predictions():
    train_x, train_y, test_x, _ = _dataset("ties", seed=1)
    test_x = test_x[:30]
    whole = knn_classify(train_x, train_y, test_x, k=7, batch_size=1024)
    for batch_size in (1, 13):
        chunked = knn_classify(train_x, train_y, test_x, k=7, batch_size=batch_size)
        np.testing.assert_array_equal(chunked["majority"], whole["majority"])
        np.testing.assert_array_equal(chunked["weighted"], whole["weighted"])


def test_k_equal_to_training_size():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]], "float32")
    predictions = knn_classify(train, np.array([0, 1, 1]), np.array([[1.0, 0.0]]), k=3)
    assert predictions["majority"][0] == 1  # counts 1 vs 2
    assert predictions["weighted"][0] == 0  # similarity 1 vs about 0 and 0.1


def test_accuracy_matches_predictions():
    train_x, train_y, test_x, test_y = _dataset("ambiguous")
    accuracy = knn_accuracy(train_x, train_y, test_x, test_y, k=5)
    predictions = knn_classify(train_x, train_y, test_x, k=5)
    assert isinstance(accuracy["majority"], float) and isinstance(accuracy["weighted"], float)
    assert accuracy["majority"] == pytest.approx(np.mean(predictions["majority"] == test_y))
    assert accuracy["weighted"] == pytest.approx(np.mean(predictions["weighted"] == test_y))
    separated = knn_accuracy(*_dataset("separated"), k=5)
    assert separated == {"majority": 1.0, "weighted": 1.0}


def test_labels_may_be_column_vectors_and_num_classes_larger():
    train_x, train_y, test_x, test_y = _dataset("separated")
    accuracy = knn_accuracy(train_x, train_y[:, None], test_x, test_y[:, None], num_classes=9)
    assert accuracy == {"majority": 1.0, "weighted": 1.0}


def _check_error(error, message, **overrides):
    train_x, train_y, test_x, test_y = _dataset("separated")
    kwargs = dict(
        train_features=train_x[:10],
        train_labels=train_y[:10],
        test_features=test_x[:4],
        test_labels=test_y[:4],
        k=3,
    )
    kwargs.update(overrides)
    with pytest.raises(error) as info:
        knn_accuracy(**kwargs)
    assert str(info.value) == message


def test_errors():
    _check_error(ValueError, "`k` must be a positive integer; received k=0.", k=0)
    _check_error(TypeError, "`k` must be an integer; received k=2.5.", k=2.5)
    _check_error(
        ValueError, "`k` must be <= the number of training samples (10); received k=11.", k=11
    )
    _check_error(
        ValueError,
        "`train_labels` must hold one label per row of `train_features` (10); "
        "received len(train_labels)=9.",
        train_labels=np.zeros(9, "int64"),
    )
    _check_error(
        ValueError,
        "`test_labels` must hold one label per row of `test_features` (4); "
        "received len(test_labels)=5.",
        test_labels=np.zeros(5, "int64"),
    )
    _check_error(
        ValueError,
        "`train_features` must be a 2-D array [N, D]; received train_features.shape=(10,).",
        train_features=np.zeros(10, "float32"),
    )
    _check_error(
        ValueError,
        "`test_features` must be a 2-D array [N, D]; received test_features.shape=(4, 2, 4).",
        test_features=np.zeros((4, 2, 4), "float32"),
    )
    bad = np.ones((4, 8), "float32")
    bad[2, 5] = np.nan
    _check_error(
        ValueError,
        "`test_features` must hold only finite values; received test_features[2, 5]=nan.",
        test_features=bad,
    )
    _check_error(
        ValueError,
        "`train_features` must hold only finite values; received train_features[0, 0]=inf.",
        train_features=np.full((10, 8), np.inf, "float32"),
    )
    _check_error(
        ValueError,
        "`test_features` must have as many columns as `train_features` (8); "
        "received test_features.shape=(4, 3).",
        test_features=np.ones((4, 3), "float32"),
    )
    _check_error(
        TypeError,
        "`train_labels` must be a 1-D array of integer class ids; "
        "received train_labels.dtype=float64.",
        train_labels=np.zeros(10),
    )
    _check_error(
        ValueError,
        "`test_labels` must hold class ids >= 0; received test_labels[1]=-1.",
        test_labels=np.array([0, -1, 0, 0]),
    )
    _check_error(
        ValueError,
        "`train_labels` must hold class ids < num_classes (2); received train_labels[0]=4.",
        train_labels=np.full(10, 4),
        num_classes=2,
    )
    _check_error(
        ValueError,
        "`temperature` must be a positive number; received temperature=0.0.",
        temperature=0.0,
    )
    _check_error(
        ValueError,
        "`batch_size` must be a positive integer; received batch_size=0.",
        batch_size=0,
    )
