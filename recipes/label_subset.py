"""The labelled subset of a semi-supervised evaluation: class-balanced, seeded."""

import math

import numpy as np

from swav_keras.validation import check_float, check_int


def label_subset(labels, label_fraction=None, labels_per_class=None, seed=0):
    """Indices of a class-balanced, seeded subset of `labels` (the labelled training set).

    The semi-supervised protocol (SwAV's `eval_semisup.py`, SimCLR's 1% / 10% ImageNet lists)
    fine-tunes on a small labelled part of the training split. With `label_fraction` f each
    class c keeps `floor(f * n_c + 0.5)` of its n_c images (the same count for every class of
    a balanced split: Fashion-MNIST at 1% keeps 60 of each class's 6,000); with
    `labels_per_class` N each class keeps exactly N. Within a class the images are drawn by a
    permutation seeded by `seed` and the class id: the same seed gives the same indices.

    Args:
        labels: integer array `[N]` of class ids `0..C-1`.
        label_fraction: float in (0, 1], or `None` when `labels_per_class` is given.
            Defaults to `None`.
        labels_per_class: positive int, or `None` when `label_fraction` is given.
            Defaults to `None`.
        seed: int, seed of the draw. Defaults to `0`.

    Returns:
        A sorted int64 array of indices into `labels`.

    Raises:
        ValueError: both or neither of `label_fraction` and `labels_per_class`; a fraction
            outside (0, 1] or one that leaves a class without a label; more labels per class
            than the smallest class holds.

    Example:

    >>> import numpy as np
    >>> from recipes.label_subset import label_subset
    >>> labels = np.repeat(np.arange(3), 100)
    >>> np.bincount(labels[label_subset(labels, label_fraction=0.05)])
    array([5, 5, 5])
    """
    check_exclusive(label_fraction, labels_per_class)
    seed = check_int("seed", seed)
    labels = np.asarray(labels).astype("int64").reshape(-1)
    counts = np.bincount(labels)
    if label_fraction is not None:
        fraction = check_fraction(label_fraction)
        kept = np.floor(fraction * counts + 0.5).astype("int64")
        if (kept[counts > 0] < 1).any():
            raise ValueError(
                "`label_fraction` must leave at least one label per class; received "
                f"label_fraction={label_fraction!r}: {int(kept.sum())} labels of "
                f"{len(labels)} images for {int((counts > 0).sum())} classes."
            )
    else:
        smallest = int(np.argmin(np.where(counts > 0, counts, np.iinfo("int64").max)))
        if labels_per_class > counts[smallest]:
            raise ValueError(
                "`labels_per_class` must be at most the images of the smallest class "
                f"({int(counts[smallest])}, class {smallest}); received "
                f"labels_per_class={labels_per_class!r}."
            )
        kept = np.where(counts > 0, labels_per_class, 0)
    chosen = []
    for label in np.flatnonzero(counts):
        rows = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, int(label)]).permutation(len(rows))
        chosen.append(rows[order[: kept[label]]])
    return np.sort(np.concatenate(chosen))


def check_fraction(label_fraction):
    """Returns `label_fraction` as a float in (0, 1]."""
    fraction = check_float("label_fraction", label_fraction)
    if not 0 < fraction <= 1:
        raise ValueError(
            f"`label_fraction` must be in (0, 1]; received label_fraction={label_fraction!r}."
        )
    return fraction


def check_exclusive(label_fraction, labels_per_class):
    """Checks that exactly one of the two is given (and `labels_per_class` positive)."""
    if (label_fraction is None) == (labels_per_class is None):
        raise ValueError(
            "Exactly one of `label_fraction` and `labels_per_class` must be given; received "
            f"label_fraction={label_fraction!r}, labels_per_class={labels_per_class!r}."
        )
    if label_fraction is not None:
        check_fraction(label_fraction)
    else:
        check_int("labels_per_class", labels_per_class, minimum=1)


def hold_out(indices, labels, fraction, seed=0):
    """Splits `indices` into `(train, validation)`, `fraction` of each class held out.

    For choosing a recipe's settings on the labelled subset itself, never on the test split:
    each class holds out `ceil(fraction * n_c)` of its n_c indices (at least one, and at
    least one left to train on), drawn with `seed`.

    Args:
        indices: int array of the labelled subset's rows.
        labels: the labels of the whole split, indexed by `indices`.
        fraction: float in (0, 1), the part of each class held out.
        seed: int. Defaults to `0`.

    Returns:
        Two sorted int64 arrays, the training and the validation rows.

    Example:

    >>> import numpy as np
    >>> from recipes.label_subset import hold_out
    >>> train, validation = hold_out(np.arange(20), np.repeat([0, 1], 10), 0.2)
    >>> len(train), len(validation)
    (16, 4)
    """
    fraction = check_float("validation_fraction", fraction)
    if not 0 < fraction < 1:
        raise ValueError(
            f"`validation_fraction` must be in (0, 1); received validation_fraction={fraction!r}."
        )
    indices = np.asarray(indices).astype("int64")
    subset_labels = np.asarray(labels)[indices]
    train, validation = [], []
    for label in np.unique(subset_labels):
        rows = indices[subset_labels == label]
        if len(rows) < 2:
            raise ValueError(
                "`validation_fraction` needs at least two labels per class; received "
                f"validation_fraction={fraction!r} with {len(rows)} label of class {label}."
            )
        rows = np.random.default_rng([seed, int(label), 1]).permutation(rows)
        held = min(max(1, math.ceil(fraction * len(rows))), len(rows) - 1)
        validation.append(rows[:held])
        train.append(rows[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))
