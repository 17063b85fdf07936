"""A FIFO of past embeddings, giving Sinkhorn more samples than one small batch holds."""

import keras
import numpy as np
from keras import ops

from swav_keras import backends
from swav_keras.validation import check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class FeatureQueue(keras.layers.Layer):
    """Stores the last `length` embeddings of each assignment crop, newest first.

    With small batches, Sinkhorn's equal partition over B samples and K prototypes is too
    coarse: the original SwAV keeps a queue of past embeddings (not scores), re-scores it with
    the current prototypes at every step, and prepends those scores to the batch's before
    computing the codes. The queue is only used once full; it is updated after the loss of
    every step.

    The state lives in non-trainable variables (`values`, `filled`), so it is saved with the
    model's weights and restored by checkpoints. When training on several replicas, each
    replica keeps its own queue of its own samples (`length` is then per replica; together they
    hold what one device's queue would): under `tf.distribute` the variables are replica-local
    (`synchronization="on_read"`, read from the first replica), as the backend adapter says.
    Checkpoints (`save_weights`, `BackupAndRestore`) save every replica's share; restored on
    another number of replicas, the saved embeddings are dealt out evenly over the new ones
    (each keeping its newest `length`).

    Args:
        num_queues: positive int, one queue per assignment crop. Defaults to `2`.
        length: positive int, embeddings held per queue. Defaults to `3840`.
        dim: positive int, the embedding dimension. Defaults to `128`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...).

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import FeatureQueue
    >>> queue = FeatureQueue(num_queues=1, length=4, dim=2)
    >>> queue.push([np.ones((2, 2), "float32")])
    >>> bool(queue.is_full())
    False
    """

    def __init__(self, num_queues=2, length=3840, dim=128, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_queues = check_int("num_queues", num_queues, minimum=1)
        self.length = check_int("length", length, minimum=1)
        self.dim = check_int("dim", dim, minimum=1)
        local = backends.active().replica_local_variable_kwargs()
        with keras.name_scope(self.name, caller=self):
            self.values = keras.Variable(
                initializer=keras.initializers.Zeros(),
                shape=(self.num_queues, self.length, self.dim),
                dtype="float32",
                trainable=False,
                name="values",
                **local,
            )
            self.filled = keras.Variable(
                initializer=keras.initializers.Zeros(), shape=(), dtype="int32", trainable=False,
                name="filled", **local,
            )
        self.built = True

    def is_full(self):
        """A boolean scalar tensor: every slot holds an embedding."""
        return ops.greater_equal(ops.convert_to_tensor(self.filled), self.length)

    def push(self, embeddings, active=None):
        """Inserts a batch of embeddings at the front of each queue, dropping the oldest.

        Args:
            embeddings: sequence of `num_queues` tensors `[B, dim]` (gradients are stopped).
            active: optional boolean scalar; when false the queue is left unchanged.
                Defaults to `None` (always push).
        """
        embeddings = list(embeddings)
        if len(embeddings) != self.num_queues:
            raise ValueError(
                f"`embeddings` must hold one [batch, {self.dim}] tensor per queue "
                f"({self.num_queues}); received {len(embeddings)} tensors."
            )
        new = ops.stack(
            [ops.cast(ops.stop_gradient(ops.convert_to_tensor(e)), "float32") for e in embeddings]
        )
        batch = ops.shape(new)[1]
        old = ops.convert_to_tensor(self.values)
        values = ops.concatenate([new, old[:, : self.length - batch]], axis=1)
        filled = ops.minimum(ops.convert_to_tensor(self.filled) + batch, self.length)
        if active is not None:
            values = ops.where(active, values, old)
            filled = ops.where(active, filled, ops.convert_to_tensor(self.filled))
        self.values.assign(values)
        self.filled.assign(ops.cast(filled, "int32"))

    def scores(self, kernel):
        """Scores of every queued embedding against `kernel` (`[dim, K]`), without gradient.

        Returns:
            A list of `num_queues` float32 tensors `[length, K]`.
        """
        kernel = ops.stop_gradient(ops.cast(ops.convert_to_tensor(kernel), "float32"))
        values = ops.convert_to_tensor(self.values)
        return [ops.matmul(values[i], kernel) for i in range(self.num_queues)]

    def save_own_variables(self, store):
        """Saves every local replica's queue: `"0"` and `"1"` hold the first replica's values
        and count (Keras's own layout), `"0_replica{r}"` and `"1_replica{r}"` replica r's."""
        adapter = backends.active()
        values = adapter.replica_values(self.values)
        filled = adapter.replica_values(self.filled)
        for r, (share, count) in enumerate(zip(values, filled)):
            suffix = f"_replica{r}" if r else ""
            store[f"0{suffix}"] = share
            store[f"1{suffix}"] = count

    def load_own_variables(self, store):
        """Restores what `save_own_variables` saved, on any number of replicas."""
        shares, counts = [store["0"]], [store["1"]]
        while f"0_replica{len(shares)}" in store:
            shares.append(store[f"0_replica{len(shares)}"])
            counts.append(store[f"1_replica{len(counts)}"])
        adapter = backends.active()
        replicas = len(adapter.replica_values(self.filled))
        values, filled = _redistribute(shares, counts, replicas, self.length)
        adapter.assign_replica_values(self.values, values)
        adapter.assign_replica_values(self.filled, filled)

    def get_config(self):
        config = super().get_config()
        config.update({"num_queues": self.num_queues, "length": self.length, "dim": self.dim})
        return config


def _redistribute(shares, counts, replicas, length):
    """Deals saved queue shares out to `replicas` queues of `length` (newest first in each).

    The same number of shares of the same length come back unchanged. Otherwise the held
    embeddings of all shares are split evenly over the new queues, each keeping its first (newest)
    `length`; the rest of a queue is zeros and its count says how many it holds.

    Returns:
        `(values, counts)`: lists of `replicas` arrays `[num_queues, length, dim]` and int32
        scalars.
    """
    shares = [np.asarray(share, "float32") for share in shares]
    counts = [int(np.asarray(count)) for count in counts]
    if len(shares) == replicas and all(share.shape[1] == length for share in shares):
        return shares, [np.asarray(count, "int32") for count in counts]
    held = np.concatenate([share[:, :count] for share, count in zip(shares, counts)], axis=1)
    values, filled = [], []
    for part in np.array_split(held, replicas, axis=1):
        part = part[:, :length]
        padding = np.zeros((part.shape[0], length - part.shape[1], part.shape[2]), "float32")
        values.append(np.concatenate([part, padding], axis=1))
        filled.append(np.asarray(part.shape[1], "int32"))
    return values, filled
