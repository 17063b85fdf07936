import numpy as np
import pytest

from recipes.label_subset import hold_out, label_subset

# An unbalanced split: class c holds 50 + 10 c images, in a shuffled order.
LABELS = np.random.default_rng(3).permutation(np.repeat(np.arange(5), 50 + 10 * np.arange(5)))


def test_a_fraction_keeps_that_part_of_every_class_rounded():
    chosen = label_subset(LABELS, label_fraction=0.1, seed=0)
    # floor(0.1 * n + 0.5) of 50, 60, 70, 80, 90 images.
    np.testing.assert_array_equal(np.bincount(LABELS[chosen]), [5, 6, 7, 8, 9])
    assert np.all(np.diff(chosen) > 0)  # sorted, no repeats
    everything = label_subset(LABELS, label_fraction=1.0)
    np.testing.assert_array_equal(everything, np.arange(len(LABELS)))


def test_labels_per_class_keeps_exactly_that_many_of_each_class():
    chosen = label_subset(LABELS, labels_per_class=7, seed=4)
    np.testing.assert_array_equal(np.bincount(LABELS[chosen]), [7] * 5)


def test_the_same_seed_draws_the_same_subset_and_another_seed_another():
    first = label_subset(LABELS, label_fraction=0.2, seed=1)
    np.testing.assert_array_equal(first, label_subset(LABELS, label_fraction=0.2, seed=1))
    other = label_subset(LABELS, label_fraction=0.2, seed=2)
    assert len(other) == len(first) and not np.array_equal(other, first)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Exactly one of `label_fraction` and `labels_per_class` must be given; received "
         "label_fraction=None, labels_per_class=None."),
    ({"label_fraction": 0.1, "labels_per_class": 3},
     "Exactly one of `label_fraction` and `labels_per_class` must be given; received "
     "label_fraction=0.1, labels_per_class=3."),
    ({"label_fraction": 0.0}, "`label_fraction` must be in (0, 1]; received label_fraction=0.0."),
    ({"label_fraction": 1.5}, "`label_fraction` must be in (0, 1]; received label_fraction=1.5."),
    ({"label_fraction": 0.005},
     "`label_fraction` must leave at least one label per class; received "
     "label_fraction=0.005: 0 labels of 350 images for 5 classes."),
    ({"labels_per_class": 0},
     "`labels_per_class` must be a positive integer; received labels_per_class=0."),
    ({"labels_per_class": 51},
     "`labels_per_class` must be at most the images of the smallest class (50, class 0); "
     "received labels_per_class=51."),
])
def test_bad_requests_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError) as error:
        label_subset(LABELS, **kwargs)
    assert str(error.value) == message


def test_hold_out_splits_each_class_of_the_subset_disjointly():
    chosen = label_subset(LABELS, labels_per_class=10, seed=0)
    train, validation = hold_out(chosen, LABELS, 0.2, seed=0)
    np.testing.assert_array_equal(np.bincount(LABELS[validation]), [2] * 5)
    np.testing.assert_array_equal(np.bincount(LABELS[train]), [8] * 5)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), chosen)
    with pytest.raises(ValueError) as error:
        hold_out(chosen, LABELS, 1.0)
    assert str(error.value) == (
        "`validation_fraction` must be in (0, 1); received validation_fraction=1.0."
    )
