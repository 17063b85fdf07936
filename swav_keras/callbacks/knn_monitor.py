"""kNN top-1 of the encoder while it trains: the online monitor of self-supervised runs."""

import time

import keras

from swav_keras import backends
from swav_keras.evaluation.features import check_images, check_labels, encode
from swav_keras.evaluation.knn import knn_accuracy
from swav_keras.validation import check_float, check_int


class KNNMonitor(keras.callbacks.Callback):
    """Adds the kNN top-1 of the model's encoder to the epoch logs, every few epochs.

    The loss and the prototype statistics (`AssignmentMonitor`) say whether SwAV trains; they
    do not say whether its features separate the classes. This callback measures that while
    the run goes on, as solo-learn's online kNN and DINO's `eval_knn.py` do: after every
    `every_epochs` epochs (and the last) it embeds `train_data` (the memory bank) and
    `test_data` with the encoder in inference mode and adds `knn_majority` and `knn_weighted`
    (top-1 in [0, 1] of the k=20 cosine vote, see `knn_accuracy`) to the epoch's logs, where
    the callbacks after it (`CSVLogger`, `TensorBoard`, `History`) record them. On the other
    epochs it adds NaN under both names (`CSVLogger` takes its columns from the first epoch's
    logs). The labels serve this measure only, never training.

    Cost: one forward pass over both sets per measure, small beside a pretraining epoch. A
    memory bank of part of the training split scores below the full-split
    `recipes/knn_eval.py` for the same encoder: compare runs measured with the same sets
    (figures: `docs/TUNING.md`, `knn_monitor_examples`).

    Args:
        train_data: tuple `(images, labels)` of arrays, the memory bank: images as the encoder
            takes them (raw pixels for this project's encoders), integer labels `[N]`.
        test_data: tuple `(images, labels)`, the images to classify.
        k: positive int <= len(train images), neighbours per test image. Defaults to `20`.
        temperature: positive float of the weighted vote. Defaults to `0.07`.
        every_epochs: positive int, measure after every this many epochs (and after the
            last of `fit`). Defaults to `1`.
        batch_size: positive int, images per encoder call. Defaults to `256`.
        encoder: the `keras.Model` to measure, or `None` for the trained model's `encoder`
            (a `swav_keras.SwAV`'s). Defaults to `None`.
        verbose: 0 or 1; 1 prints a line per measure with its time. `fit`'s progress bar
            shows the two figures either way. Defaults to `0`.

    Example:

    ```python
    import keras
    from swav_keras.callbacks import KNNMonitor

    monitor = KNNMonitor((images[:10000], labels[:10000]), (test_images, test_labels))
    model.fit(dataset, epochs=10, callbacks=[monitor, keras.callbacks.CSVLogger("log.csv")])
    ```

    Reference:
        Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
        CVPR 2018 (the weighted kNN vote).
    """

    def __init__(self, train_data, test_data, k=20, temperature=0.07, every_epochs=1,
                 batch_size=256, encoder=None, verbose=0):
        super().__init__()
        self.train_images, self.train_labels = _check_data("train_data", train_data)
        self.test_images, self.test_labels = _check_data("test_data", test_data)
        self.k = check_int("k", k, minimum=1)
        if self.k > len(self.train_images):
            raise ValueError(
                f"`k` must be at most the number of training images ({len(self.train_images)});"
                f" received k={k}."
            )
        self.temperature = check_float("temperature", temperature, positive=True)
        self.every_epochs = check_int("every_epochs", every_epochs, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        if encoder is not None and not isinstance(encoder, keras.Model):
            raise TypeError(
                "`encoder` must be a keras.Model or None; received encoder of type "
                f"{type(encoder).__name__}."
            )
        self.encoder = encoder
        if verbose not in (0, 1) or isinstance(verbose, bool):
            raise ValueError(f"`verbose` must be 0 or 1; received verbose={verbose!r}.")
        self.verbose = verbose
        self.num_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        self._epochs = None

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs") if self.params else None

    def on_epoch_end(self, epoch, logs=None):
        last = self._epochs is not None and epoch + 1 == self._epochs
        if (epoch + 1) % self.every_epochs and not last:
            if logs is not None:
                logs["knn_majority"] = logs["knn_weighted"] = float("nan")
            return
        encoder = self.encoder if self.encoder is not None else getattr(self.model, "encoder",
                                                                         None)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                "KNNMonitor needs `encoder=` or a model with an `encoder` attribute (a "
                f"swav_keras.SwAV); received a model of type {type(self.model).__name__}."
            )
        start = time.perf_counter()
        # On multi-host JAX, copies that this process holds; elsewhere the encoder itself.
        with backends.active().process_local(encoder) as (local,):
            train = encode(local, self.train_images, self.batch_size)
            test = encode(local, self.test_images, self.batch_size)
        accuracy = knn_accuracy(train, self.train_labels, test, self.test_labels, k=self.k,
                                temperature=self.temperature, num_classes=self.num_classes)
        if logs is not None:
            logs["knn_majority"] = accuracy["majority"]
            logs["knn_weighted"] = accuracy["weighted"]
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: kNN (k={self.k}, {len(train)} -> {len(test)} images) "
                  f"majority {accuracy['majority']:.2%}, weighted {accuracy['weighted']:.2%} "
                  f"({time.perf_counter() - start:.0f} s)")

    def get_config(self):
        # The image arrays are data, not configuration: they are not part of it.
        return {"k": self.k, "temperature": self.temperature, "every_epochs": self.every_epochs,
                "batch_size": self.batch_size, "verbose": self.verbose}


def _check_data(name, data):
    """`(images, labels)` as NumPy arrays, one integer label per image."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        size = f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""
        raise TypeError(
            f"`{name}` must be a tuple (images, labels); received a {type(data).__name__}"
            f"{size}."
        )
    images = check_images(f"{name}[0]", data[0])
    labels = check_labels(f"{name}[1]", data[1], len(images), f"{name}[0]")
    return images, labels
