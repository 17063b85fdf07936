"""Linear evaluation of frozen features: a softmax classifier trained with `model.fit`."""

import math

import keras
import numpy as np
from keras import ops

from swav_keras.evaluation.features import check_features, check_labels, check_verbose
from swav_keras.validation import check_float, check_int


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    num_classes=None,
    epochs=100,
    batch_size=256,
    learning_rate=0.3,
    momentum=0.9,
    weight_decay=1e-6,
    standardize=True,
    verbose="auto",
    seed=0,
):
    """Trains a linear classifier on frozen features and reports its test top-1 and top-5.

    The standard measure of a self-supervised representation: how well a linear layer on top
    of it separates the classes. The recipe is SwAV's `eval_linear.py`: a `Dense` layer
    initialised N(0, 0.01) with zero bias, softmax cross-entropy, SGD with momentum 0.9,
    learning rate 0.3 decayed per epoch by a cosine to 0 (PyTorch's `CosineAnnealingLR`
    stepped every epoch, here a `LearningRateScheduler` callback), weight decay 1e-6, batch
    256, 100 epochs; smaller budgets are a matter of arguments. Differences, by design:
    - it trains on features extracted once (`extract_features`), not on images passed
      through the frozen encoder at every step, so the original's train-time random crop and
      flip augmentation (a regulariser) is left out: much faster on CPU, slightly different
      scores;
    - weight decay is the original's coupled (L2) decay, written as L2 regularizers of
      strength `weight_decay / 2` on kernel and bias (gradient `weight_decay * w`, through
      the momentum, as PyTorch's `SGD(weight_decay=)`); Keras's `SGD(weight_decay=)` would be
      decoupled instead. Keras's momentum holds steps already scaled by the learning rate,
      PyTorch's holds gradients: the two differ only when the rate changes, once an epoch;
    - with `standardize` (the default) each feature is first standardised by the mean and
      standard deviation of the training features (a fixed `Normalization` layer, constant
      features left unscaled). Unscaled features (raw pixels 0-255, ReLU outputs of very
      different scales) make the problem badly conditioned, so one learning rate fits
      neither them nor different encoders; the original trains on raw ResNet-50 features
      (an optional BatchNorm, off by default, plays this role). The layer is a fixed affine
      map, so the classifier is still linear in the features;
    - the score is that of the final epoch, not the best epoch on the test set (the original
      reports the best, which selects on the test set).
    Training is deterministic for a given `seed` (initialisation and shuffling).

    Standardised features have a squared norm of about D, and the step grows with it: 0.3
    suits about a hundred dimensions (the 128-D Fashion-MNIST encoder features), while
    several hundred (raw pixels, 784-D) want a smaller rate (`benchmarks/RESULTS.md`,
    "Accuracy"). Compare encoders of different widths with that in mind.

    Args:
        train_features: array `[N, D]` of training features (finite).
        train_labels: integer array `[N]` of class ids.
        test_features: array `[M, D]` of test features (finite).
        test_labels: integer array `[M]` of class ids.
        num_classes: positive int, or `None` for one more than the largest label of either
            split. Defaults to `None`.
        epochs: positive int. Defaults to `100`.
        batch_size: positive int. Defaults to `256`.
        learning_rate: positive float, the initial learning rate. Defaults to `0.3`.
        momentum: float in [0, 1]. Defaults to `0.9`.
        weight_decay: float >= 0, coupled (L2) weight decay. Defaults to `1e-6`.
        standardize: bool, standardise features with training statistics first.
            Defaults to `True`.
        verbose: `"auto"`, 0, 1 or 2, as in `Model.fit`. Defaults to `"auto"`.
        seed: int, seed of the initialisation and of the shuffling. Defaults to `0`.

    Returns:
        A dict: `"top1"` and `"top5"`, float test accuracies in [0, 1] (top-5 is top-C when
        there are C < 5 classes, hence 1.0); `"classifier"`, the trained `keras.Model` from
        features `[B, D]` to logits `[B, C]` (save it with `classifier.save("x.keras")`);
        `"history"`, the `fit` history dict (per-epoch `loss`, `accuracy`, `learning_rate`).

    Example:

    ```python
    from swav_keras.evaluation import extract_features, linear_probe

    train_x, train_y = extract_features(encoder, (images, labels))
    test_x, test_y = extract_features(encoder, (test_images, test_labels))
    result = linear_probe(train_x, train_y, test_x, test_y, epochs=10)
    print(result["top1"], result["top5"])
    ```

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020 (`eval_linear.py`).
    """
    train_features = check_features("train_features", train_features)
    test_features = check_features("test_features", test_features)
    dim = train_features.shape[1]
    if test_features.shape[1] != dim:
        raise ValueError(
            f"`test_features` must have as many columns as `train_features` ({dim}); "
            f"received test_features.shape={test_features.shape}."
        )
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    train_labels = check_labels(
        "train_labels", train_labels, len(train_features), "train_features", num_classes
    )
    test_labels = check_labels(
        "test_labels", test_labels, len(test_features), "test_features", num_classes
    )
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    learning_rate = check_float("learning_rate", learning_rate, positive=True)
    momentum = check_float("momentum", momentum, minimum=0, maximum=1)
    weight_decay = check_float("weight_decay", weight_decay, minimum=0)
    if not isinstance(standardize, bool):
        raise TypeError(f"`standardize` must be a bool; received standardize={standardize!r}.")
    verbose = check_verbose(verbose)
    seed = check_int("seed", seed)

    mean, variance = _statistics(train_features) if standardize else (None, None)
    classifier = _linear_classifier(dim, num_classes, mean, variance, weight_decay, seed)
    classifier.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )

    def cosine(epoch):
        return 0.5 * learning_rate * (1.0 + math.cos(math.pi * epoch / epochs))

    history = classifier.fit(
        _ShuffledBatches(train_features, train_labels, batch_size, seed),
        epochs=epochs,
        shuffle=False,  # the batches shuffle themselves, from `seed`
        callbacks=[keras.callbacks.LearningRateScheduler(cosine)],
        verbose=verbose,
    )
    logits = classifier.predict(test_features, batch_size=1024, verbose=0)
    return {
        "top1": top_k_accuracy(logits, test_labels, k=1),
        "top5": top_k_accuracy(logits, test_labels, k=5),
        "classifier": classifier,
        "history": history.history,
    }


def top_k_accuracy(logits, labels, k=1):
    """Fraction of rows whose true class is among the k largest logits.

    Classes are ranked by logit, equal logits by class id (the smaller first, as `argmax`
    does), so every row has exactly one rank per class and ties never count twice: a
    classifier whose logits are all equal is right only for class 0. `k` larger than the
    number of classes C counts as C. A row holding NaN or Inf counts as wrong.

    Args:
        logits: array `[M, C]` of scores.
        labels: integer array `[M]` of class ids in `[0, C)`.
        k: positive int. Defaults to `1`.

    Returns:
        The accuracy as a Python float in [0, 1].

    Example:

    >>> import numpy as np
    >>> from swav_keras.evaluation import top_k_accuracy
    >>> top_k_accuracy(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), np.array([2, 0]), k=2)
    1.0
    """
    k = check_int("k", k, minimum=1)
    logits = np.asarray(ops.convert_to_numpy(logits), dtype="float32")
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(
            f"`logits` must be a 2-D array [M, C]; received logits.shape={logits.shape}."
        )
    labels = check_labels("labels", labels, len(logits), "logits", logits.shape[1])
    logits = ops.convert_to_tensor(logits)
    labels = ops.convert_to_tensor(labels.astype("int32"))[:, None]
    true = ops.take_along_axis(logits, labels, axis=1)  # [M, 1]
    class_ids = ops.arange(ops.shape(logits)[1], dtype="int32")[None, :]
    ahead = ops.logical_or(
        ops.greater(logits, true),
        ops.logical_and(ops.equal(logits, true), ops.less(class_ids, labels)),
    )
    rank = ops.sum(ops.cast(ahead, "int32"), axis=1)
    finite = ops.all(ops.isfinite(logits), axis=1)
    correct = ops.logical_and(ops.less(rank, k), finite)
    return float(ops.convert_to_numpy(ops.mean(ops.cast(correct, "float32"))))


def _statistics(features):
    """Mean and variance per feature (float64 sums); constant features get variance 1."""
    mean = features.mean(axis=0, dtype="float64")
    variance = features.var(axis=0, dtype="float64")
    constant = variance <= 1e-12 * max(variance.max(), 1e-30)
    variance[constant] = 1.0
    return mean.astype("float32"), variance.astype("float32")


def _linear_classifier(dim, num_classes, mean, variance, weight_decay, seed):
    inputs = keras.Input((dim,), name="features")
    x = inputs
    if mean is not None:
        x = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(x)
    # PyTorch's coupled decay adds weight_decay * w to the gradient: L2 of weight_decay / 2.
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    outputs = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
        bias_initializer="zeros",
        kernel_regularizer=regularizer,
        bias_regularizer=regularizer,
        name="linear",
    )(x)
    return keras.Model(inputs, outputs, name="linear_classifier")


class _ShuffledBatches(keras.utils.PyDataset):
    """Batches in a new seeded order every epoch (deterministic, unlike `fit(shuffle=True)`
    on NumPy arrays, which draws from the global random state)."""

    def __init__(self, features, labels, batch_size, seed):
        super().__init__()
        self.features, self.labels = features, labels.astype("int32")
        self.batch_size = batch_size
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(features))

    def __len__(self):
        return math.ceil(len(self.features) / self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.features[rows], self.labels[rows]

    def on_epoch_end(self):
        self._order = self._rng.permutation(len(self.features))
