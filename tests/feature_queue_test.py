"""Tests of `FeatureQueue`: FIFO order, counts, saving and restoring on other replica counts."""

import keras
import numpy as np
import pytest

from swav_keras.layers import FeatureQueue
from swav_keras.layers.feature_queue import _redistribute


def values(queue):
    return keras.ops.convert_to_numpy(queue.values), int(keras.ops.convert_to_numpy(queue.filled))


def batch(rows, dim=2, start=0):
    """`rows` distinct embeddings: row i is (start + i + 1) * ones."""
    scale = np.arange(start + 1, start + rows + 1, dtype="float32")
    return scale[:, None] * np.ones(dim, "float32")


def test_push_is_newest_first_and_drops_the_oldest():
    queue = FeatureQueue(num_queues=2, length=4, dim=2)
    expected = np.zeros((2, 4, 2), "float32")
    for step in range(3):
        new = [batch(2, start=10 * step), -batch(2, start=10 * step)]
        queue.push(new)
        # NumPy transcription of the FIFO: new rows in front, the oldest fall off the end.
        expected = np.concatenate([np.stack(new), expected], axis=1)[:, :4]
        got, filled = values(queue)
        np.testing.assert_array_equal(got, expected)
        assert filled == min(2 * (step + 1), 4)
        assert bool(keras.ops.convert_to_numpy(queue.is_full())) == (step >= 1)


def test_inactive_push_changes_nothing():
    queue = FeatureQueue(num_queues=1, length=4, dim=2)
    queue.push([batch(2)])
    queue.push([batch(2, start=5)], active=keras.ops.convert_to_tensor(False))
    got, filled = values(queue)
    np.testing.assert_array_equal(got[0, :2], batch(2))
    assert filled == 2


def test_scores_are_queued_embeddings_times_kernel():
    queue = FeatureQueue(num_queues=2, length=2, dim=2)
    queue.push([batch(2), -batch(2)])
    kernel = np.array([[1.0, 0.5, -1.0], [2.0, 0.0, 1.0]], "float32")
    scores = [keras.ops.convert_to_numpy(s) for s in queue.scores(kernel)]
    np.testing.assert_allclose(scores[0], batch(2) @ kernel, rtol=1e-6)
    np.testing.assert_allclose(scores[1], -batch(2) @ kernel, rtol=1e-6)


def test_wrong_number_of_embeddings():
    queue = FeatureQueue(num_queues=2, length=4, dim=2)
    with pytest.raises(ValueError, match=r"one \[batch, 2\] tensor per queue \(2\); received 1"):
        queue.push([batch(2)])


def test_arguments_are_validated_and_in_the_config():
    message = "^`length` must be a positive integer; received length=0.$"
    with pytest.raises(ValueError, match=message):
        FeatureQueue(length=0)
    queue = FeatureQueue(num_queues=3, length=8, dim=5, name="q")
    config = queue.get_config()
    assert (config["num_queues"], config["length"], config["dim"]) == (3, 8, 5)
    assert FeatureQueue.from_config(config).values.shape == (3, 8, 5)


class Holder(keras.Model):
    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.queue = FeatureQueue(num_queues=2, length=length, dim=2)

    def call(self, x):
        return x


def test_weights_file_round_trip(tmp_path):
    saved = Holder(4)
    saved(np.zeros((1, 1), "float32"))
    saved.queue.push([batch(2), -batch(2, start=3)])
    saved.save_weights(tmp_path / "queue.weights.h5")
    restored = Holder(4)
    restored(np.zeros((1, 1), "float32"))
    restored.load_weights(tmp_path / "queue.weights.h5")
    for a, b in zip(values(saved.queue), values(restored.queue)):
        np.testing.assert_array_equal(a, b)


def share(start, count, length=4):
    """One replica's saved queue: `count` held rows (newest first), then zeros."""
    rows = np.zeros((1, length, 2), "float32")
    rows[0, :count] = batch(count, start=start)
    return rows


def test_same_replica_count_restores_each_share_unchanged():
    shares, counts = [share(0, 4), share(10, 4)], [4, 4]
    got, filled = _redistribute(shares, counts, replicas=2, length=4)
    for a, b in zip(got, shares):
        np.testing.assert_array_equal(a, b)
    assert [int(c) for c in filled] == [4, 4]


def test_fewer_replicas_keep_every_embedding():
    """Two full shares of 4 onto one queue of 8 (the same global length): nothing is lost."""
    got, filled = _redistribute([share(0, 4), share(10, 4)], [4, 4], replicas=1, length=8)
    assert len(got) == 1 and int(filled[0]) == 8
    np.testing.assert_array_equal(got[0][0], np.concatenate([batch(4), batch(4, start=10)]))


def test_more_replicas_split_the_held_embeddings_evenly():
    got, filled = _redistribute([share(0, 3, length=8)], [3], replicas=2, length=4)
    assert [int(c) for c in filled] == [2, 1]
    np.testing.assert_array_equal(got[0][0, :2], batch(3)[:2])
    np.testing.assert_array_equal(got[1][0, :1], batch(3)[2:])
    assert not got[0][0, 2:].any() and not got[1][0, 1:].any()


def test_a_shorter_queue_keeps_the_newest():
    got, filled = _redistribute([share(0, 4)], [4], replicas=1, length=2)
    assert int(filled[0]) == 2
    np.testing.assert_array_equal(got[0][0], batch(2))
