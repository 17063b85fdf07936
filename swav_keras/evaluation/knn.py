"""Weighted k-nearest-neighbour classification of features: the self-supervised kNN monitor."""

import numpy as np
from keras import ops

from swav_keras.evaluation.features import check_features, check_labels
from swav_keras.validation import check_float, check_int

# Weighted votes closer than this, relative to the largest, count as tied.
_VOTE_TIE = 1e-5


def knn_classify(
    train_features,
    train_labels,
    test_features,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=1024,
):
    """Predicts the class of each test feature from its k most similar training features.

    The standard kNN monitor of self-supervised learning (Wu et al. 2018; DINO's
    `eval_knn.py`): needs no training, so it scores an encoder in seconds. Features are
    L2-normalised, compared by cosine similarity, and the k most similar training samples of
    each test sample vote:
    - `"majority"`: one vote each; a tie in the count goes to the smallest class id, as in
      scikit-learn's `KNeighborsClassifier` (`scipy.stats.mode`), so results compare;
    - `"weighted"`: votes `exp(similarity / temperature)` summed per class; a tie goes to the
      smallest class id. Votes within a relative 1e-5 of each other count as tied: float32
      sums of the same weights taken in another order (another backend) differ in their last
      bits.
    When several training samples are exactly as similar as the k-th nearest, the ones with
    the smallest row index are taken, so the result does not depend on the backend's `top_k`.
    A zero feature vector stays zero (similarity 0 to everything).

    Runs with `keras.ops` on the active backend, `batch_size` test rows at a time (a
    `[batch_size, N]` similarity block), so 10k x 60k features fit in memory. On GPUs,
    TensorFlow and JAX may run float32 matrix products in TF32 (similarities rounded to about
    1e-3), so a few predictions can differ from a CPU run.

    Args:
        train_features: array `[N, D]` of training features (finite).
        train_labels: integer array `[N]` of training class ids.
        test_features: array `[M, D]` of test features (finite).
        k: positive int <= N, neighbours per test sample. Defaults to `20`.
        temperature: positive float, the weighted vote's temperature. Defaults to `0.07`.
        num_classes: positive int, or `None` for `max(train_labels) + 1`. Defaults to `None`.
        batch_size: positive int, test rows per similarity block. Defaults to `1024`.

    Returns:
        A dict `{"majority": int64 array [M], "weighted": int64 array [M]}` of predicted ids.

    Example:

    >>> import numpy as np
    >>> from swav_keras.evaluation import knn_classify
    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_classify(train, np.array([0, 0, 1]), np.array([[1.0, 0.2]]), k=2)["majority"]
    array([0])

    Reference:
        Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
        CVPR 2018. Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
        ICCV 2021 (`eval_knn.py`).
    """
    train_features, train_labels, test_features, _, num_classes = _validate(
        train_features, train_labels, test_features, None, k, num_classes
    )
    return _classify(
        train_features, train_labels, test_features, k, temperature, num_classes, batch_size
    )


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=1024,
):
    """Top-1 accuracy of the majority and the weighted kNN vote (see `knn_classify`).

    Args:
        train_features: array `[N, D]` of training features (finite).
        train_labels: integer array `[N]` of training class ids.
        test_features: array `[M, D]` of test features (finite).
        test_labels: integer array `[M]` of test class ids.
        k: positive int <= N, neighbours per test sample. Defaults to `20`.
        temperature: positive float, the weighted vote's temperature. Defaults to `0.07`.
        num_classes: positive int, or `None` for one more than the largest label of either
            split. Defaults to `None`.
        batch_size: positive int, test rows per similarity block. Defaults to `1024`.

    Returns:
        A dict `{"majority": float, "weighted": float}` of accuracies in [0, 1].

    Example:

    ```python
    from swav_keras.evaluation import extract_features, knn_accuracy

    train_x, train_y = extract_features(encoder, (images, labels))
    test_x, test_y = extract_features(encoder, (test_images, test_labels))
    print(knn_accuracy(train_x, train_y, test_x, test_y))  # {"majority": .., "weighted": ..}
    ```

    Reference:
        Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
        CVPR 2018.
    """
    train_features, train_labels, test_features, test_labels, num_classes = _validate(
        train_features, train_labels, test_features, test_labels, k, num_classes
    )
    predictions = _classify(
        train_features, train_labels, test_features, k, temperature, num_classes, batch_size
    )
    return {name: float(np.mean(pred == test_labels)) for name, pred in predictions.items()}


def _classify(train_features, train_labels, test_features, k, temperature, num_classes, batch_size):
    temperature = check_float("temperature", temperature, positive=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    train_t = ops.transpose(_l2_normalize(ops.convert_to_tensor(train_features)))
    labels = ops.convert_to_tensor(train_labels.astype("int32"))
    class_ids = ops.arange(num_classes, dtype="int32")
    # One more than k: the (k+1)-th value tells whether the k-th nearest is tied.
    depth = min(k + 1, len(train_features))
    majority, weighted = [], []
    for start in range(0, len(test_features), batch_size):
        test = _l2_normalize(ops.convert_to_tensor(test_features[start : start + batch_size]))
        similarity = ops.matmul(test, train_t)  # [b, N]
        values, indices = ops.top_k(similarity, depth)
        indices = indices[:, :k]
        if depth > k:
            indices = _break_ties_by_index(similarity, values, indices, k)
        values = values[:, :k]
        neighbours = ops.one_hot(ops.take(labels, indices), num_classes)  # [b, k, C]
        # exp((s - s_max) / T): the same vote as exp(s / T), without overflow for small T.
        weights = ops.exp((values - values[:, :1]) / temperature)
        counts = ops.sum(neighbours, axis=1)  # [b, C], exact integers
        votes = ops.sum(neighbours * weights[:, :, None], axis=1)
        majority.append(_first_argmax(counts, class_ids, tolerance=0.0))
        weighted.append(_first_argmax(votes, class_ids, tolerance=_VOTE_TIE))
    return {
        "majority": np.concatenate(majority).astype("int64"),
        "weighted": np.concatenate(weighted).astype("int64"),
    }


def _break_ties_by_index(similarity, values, indices, k):
    """Indices `[b, k]` of the k nearest, where a row whose k-th value is shared by more
    samples than fit takes the tied samples of smallest index (`top_k` orders ties as it
    likes, differently per backend). `values` holds the k+1 largest values per row."""
    tied = np.flatnonzero(ops.convert_to_numpy(ops.equal(values[:, k - 1], values[:, k])))
    if not len(tied):
        return indices
    # Whole-block ops (not only the tied rows): constant shapes, so JAX compiles them once.
    kth = values[:, k - 1 : k]
    at_kth = ops.equal(similarity, kth)
    # Rank the tied samples by index: key -index for them, below every such key for others.
    num_train = ops.shape(similarity)[1]
    # float32 keys are exact up to 2**24 samples, and JAX's CPU top_k is much slower on ints.
    key_dtype = "float32" if num_train < 2**24 else "int32"
    key = ops.where(at_kth, -ops.arange(num_train, dtype=key_dtype), -num_train - 1)
    tie_indices = ops.convert_to_numpy(ops.top_k(key, k)[1])[tied]
    above = ops.convert_to_numpy(ops.sum(ops.cast(ops.greater(values[:, :k], kth), "int32"), 1))
    above = above[tied]
    fixed = np.array(ops.convert_to_numpy(indices))
    for row, row_above, row_ties in zip(tied, above, tie_indices):
        fixed[row, row_above:] = row_ties[: k - row_above]  # top_k sorts the larger first
    return ops.convert_to_tensor(fixed)


def _validate(train_features, train_labels, test_features, test_labels, k, num_classes):
    train_features = check_features("train_features", train_features)
    test_features = check_features("test_features", test_features)
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            f"`test_features` must have as many columns as `train_features` "
            f"({train_features.shape[1]}); received test_features.shape={test_features.shape}."
        )
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    num_train = len(train_features)
    train_labels = check_labels(
        "train_labels", train_labels, num_train, "train_features", num_classes
    )
    largest = int(train_labels.max())
    if test_labels is not None:
        test_labels = check_labels(
            "test_labels", test_labels, len(test_features), "test_features", num_classes
        )
        largest = max(largest, int(test_labels.max()))
    k = check_int("k", k, minimum=1)
    if k > num_train:
        raise ValueError(
            f"`k` must be <= the number of training samples ({num_train}); received k={k}."
        )
    if num_classes is None:
        num_classes = largest + 1
    return train_features, train_labels, test_features, test_labels, num_classes


def _l2_normalize(x):
    x = ops.cast(x, "float32")
    norm = ops.sqrt(ops.sum(ops.square(x), axis=1, keepdims=True))
    return x / ops.maximum(norm, 1e-12)


def _first_argmax(scores, class_ids, tolerance):
    """Index of the row maximum, the smallest among those within a relative `tolerance` of
    it (never left to the backend's `argmax`, whose choice among ties is not specified)."""
    top = ops.max(scores, axis=1, keepdims=True)
    best = ops.greater_equal(scores, top - tolerance * ops.abs(top))
    first = ops.min(ops.where(best, class_ids, ops.shape(scores)[1]), axis=1)
    return np.array(ops.convert_to_numpy(first), dtype="int64")  # a writable copy
