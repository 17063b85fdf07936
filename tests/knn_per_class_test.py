"""The per-class breakdown of `benchmarks/knn_per_class.py` against counting by loops."""

import numpy as np
import pytest

from benchmarks import knn_per_class


def reference_confusion(labels, predictions, num_classes):
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for true, predicted in zip(labels, predictions):
        confusion[true, predicted] += 1
    return confusion


def test_confusion_matrix_counts_every_pair():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    predictions = np.where(rng.random(400) < 0.7, labels, rng.integers(0, 5, 400))
    confusion = knn_per_class.confusion_matrix(labels, predictions, 5)
    np.testing.assert_array_equal(confusion, reference_confusion(labels, predictions, 5))
    assert confusion.sum() == 400


def test_per_class_accuracy_is_each_rows_diagonal_share():
    confusion = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    accuracy = knn_per_class.per_class_accuracy(confusion)
    np.testing.assert_allclose(accuracy[:2], [0.8, 0.25])
    assert np.isnan(accuracy[2])  # no test image of class 2


def test_most_traded_orders_by_count_then_pair():
    confusion = np.array([[5, 3, 1], [3, 6, 0], [0, 4, 2]])
    assert knn_per_class.most_traded(confusion, 3) == [(2, 1, 4), (0, 1, 3), (1, 0, 3)]
    assert knn_per_class.most_traded(confusion, 10) == [
        (2, 1, 4), (0, 1, 3), (1, 0, 3), (0, 2, 1)]  # empty cells are left out


def test_confusion_matrix_refuses_mismatched_or_out_of_range_ids():
    with pytest.raises(ValueError, match=r"1-D arrays of one length; received shapes \(3,\) "
                                         r"and \(2,\)"):
        knn_per_class.confusion_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match=r"`predictions` must hold class ids in \[0, 3\); "
                                         r"received ids from 0 to 3"):
        knn_per_class.confusion_matrix([0, 1, 2], [0, 1, 3], 3)
    with pytest.raises(ValueError, match=r"`labels` must hold class ids in \[0, 3\); "
                                         r"received ids from -1 to 2"):
        knn_per_class.confusion_matrix([-1, 1, 2], [0, 1, 2], 3)


def test_column_name_is_the_run_folder_for_encoder_keras():
    assert knn_per_class.column_name("runs/s3w32/encoder.keras") == "s3w32"
    assert knn_per_class.column_name("runs/s3w32/epoch_5.keras") == "epoch_5.keras"
    assert knn_per_class.column_name("pixels") == "pixels"
    assert knn_per_class.column_name("random:16") == "random:16"
