"""Tests of `ImageBatches`: full, reshuffled, reproducible batches without TensorFlow."""

import keras
import numpy as np
import pytest

from swav_keras.data import ImageBatches


def images(n=50, channels=None):
    shape = (n, 4, 4) if channels is None else (n, 4, 4, channels)
    x = np.zeros(shape, "uint8")
    x[:, 0, 0] = np.arange(n)[:, None] if channels else np.arange(n)  # image i holds i
    return x


def ids(batch):
    return batch[:, 0, 0, 0].tolist()


def epoch(data):
    return [ids(data[i]) for i in range(len(data))]


def test_full_batches_each_image_at_most_once_per_epoch():
    data = ImageBatches(images(), batch_size=16, seed=0)
    assert len(data) == 3  # 50 // 16: the incomplete batch is dropped
    batches = epoch(data)
    assert all(len(b) == 16 for b in batches)
    seen = sum(batches, [])
    assert len(set(seen)) == 48 and data[0].shape == (16, 4, 4, 1) and data[0].dtype == np.uint8
    with pytest.raises(IndexError, match=r"batch index 3 out of range \[0, 3\)."):
        data[3]


def test_orders_change_per_epoch_and_replay_with_a_seed():
    data, twin = ImageBatches(images(), 10, seed=3), ImageBatches(images(), 10, seed=3)
    first = epoch(data)
    assert first == epoch(twin) and first != sorted(first)
    data.on_epoch_begin()
    data.on_epoch_end()
    second = epoch(data)
    assert second != first and sorted(sum(second, [])) == list(range(50))
    twin.set_epoch(1)  # a resumed run serves the order of its epoch
    assert epoch(twin) == second
    assert epoch(ImageBatches(images(), 10, seed=4)) != first
    assert epoch(ImageBatches(images(), 10, shuffle=False)) == [
        list(range(i, i + 10)) for i in range(0, 50, 10)]


def test_set_epoch_skips_the_batches_a_resumed_run_has_done():
    full, resumed = ImageBatches(images(), 10, seed=3), ImageBatches(images(), 10, seed=3)
    full.set_epoch(2)
    resumed.set_epoch(2, skip=3)
    assert len(resumed) == 2 and epoch(resumed) == epoch(full)[3:]
    resumed.on_epoch_begin()
    resumed.on_epoch_end()  # the next epoch is whole again
    full.set_epoch(3)
    assert len(resumed) == 5 and epoch(resumed) == epoch(full)
    with pytest.raises(ValueError, match="`skip` must be less than the 5 batches of an "
                                         "epoch; received skip=5."):
        resumed.set_epoch(0, skip=5)


def test_rgb_images_keep_their_channels():
    assert ImageBatches(images(channels=3), 5)[0].shape == (5, 4, 4, 3)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(images=np.zeros((5, 4)), batch_size=2), ValueError,
         r"`images` must be an array \[N, height, width\] or \[N, height, width, channels\] "
         r"with 1 or 3 channels; received images.shape=\(5, 4\)."),
        (dict(images=images(), batch_size=0), ValueError,
         "`batch_size` must be a positive integer; received batch_size=0."),
        (dict(images=images(), batch_size=51), ValueError,
         r"`batch_size` must be at most the number of images \(50\); received batch_size=51."),
        (dict(images=images(), batch_size=2, shuffle=1), TypeError,
         "`shuffle` must be a bool; received shuffle=1."),
        (dict(images=images(), batch_size=2, seed=-1), ValueError,
         "`seed` must be an integer >= 0; received seed=-1."),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ImageBatches(**kwargs)


class Logged(ImageBatches):
    """Records the ids of every batch read within an epoch of `fit` (not the batches that
    TensorFlow's adapter reads before, for their shapes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read, self.within = [], False

    def on_epoch_begin(self):
        super().on_epoch_begin()
        self.within = True

    def on_epoch_end(self):
        super().on_epoch_end()
        self.within = False

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        if self.within:
            self.read.append(ids(batch))
        return batch


class MeanSquare(keras.Model):
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean(keras.ops.square(y_pred))


def fit_reads(data, epochs):
    """The batches `fit(data, epochs=epochs)` trains on, in order, on the active backend."""
    inputs = keras.Input((4, 4, 1))
    model = MeanSquare(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="sgd")
    model(data[0])  # built: `fit` reads no batch to build it
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)  # as the recipe: no batch shuffle
    return data.read


def test_fit_serves_each_epochs_order_and_a_resumed_epochs_rest():
    # `fit` calls `on_epoch_end` once before its first epoch too: that call must not move the
    # order on, or a run resumed inside epoch 1 would train on epoch 2's first batches.
    orders = [ImageBatches(images(), 10, seed=3) for _ in range(2)]
    orders[1].set_epoch(1)
    assert fit_reads(Logged(images(), 10, seed=3), epochs=2) == epoch(orders[0]) + epoch(
        orders[1])
    resumed = Logged(images(), 10, seed=3)
    resumed.set_epoch(1, skip=3)
    assert fit_reads(resumed, epochs=1) == epoch(orders[1])[3:]


def test_drop_remainder_false_serves_every_image_in_order():
    data = ImageBatches(images(), 16, shuffle=False, drop_remainder=False)
    assert len(data) == 4 and [len(b) for b in epoch(data)] == [16, 16, 16, 2]
    assert sum(epoch(data), []) == list(range(50))
    data.set_epoch(1, skip=3)
    assert epoch(data) == [[48, 49]]
    with pytest.raises(TypeError, match="`drop_remainder` must be a bool; received "
                                        "drop_remainder=None."):
        ImageBatches(images(), 16, drop_remainder=None)
