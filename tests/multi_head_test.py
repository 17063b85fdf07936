"""Tests of `SwAV` with several prototype heads (`num_prototypes=(K1, K2, ...)`)."""

import math

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

from swav_keras import SwAV
from swav_keras.callbacks import AssignmentMonitor

HEADS = (12, 7, 5)


def tiny_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny_encoder")


def make_model(num_prototypes=HEADS, **kwargs):
    return SwAV(tiny_encoder(), projection_dim=8, hidden_dim=16, num_prototypes=num_prototypes,
                **kwargs)


def random_crops(batch=8, sizes=(16, 16, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(0, 1, (batch, s, s, 1)).astype("float32") for s in sizes)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def kernels(model):
    return [numpy(head.kernel) for head in model.prototype_heads()]


def test_scores_per_head_on_the_same_embeddings():
    model = make_model()
    out = model(random_crops(), training=False)
    assert len(out["embeddings"]) == 4 and len(out["scores"]) == len(HEADS)
    assert [h.name for h in model.prototype_heads()] == [
        "prototypes", "prototypes_1", "prototypes_2"
    ]
    for k, head_scores, kernel in zip(HEADS, out["scores"], kernels(model)):
        assert len(head_scores) == 4
        np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-6)
        for scores, embeddings in zip(head_scores, out["embeddings"]):
            assert tuple(scores.shape) == (8, k)
            np.testing.assert_allclose(numpy(scores), numpy(embeddings) @ kernel, atol=1e-5)
    # Counts and metrics are the first head's.
    assert tuple(model.prototype_counts.shape) == (12,)


def test_an_int_keeps_the_single_head_and_its_layout():
    model = make_model(num_prototypes=12)
    out = model(random_crops(), training=False)
    assert model.extra_prototypes == [] and model.prototype_heads() == [model.prototypes]
    assert [tuple(s.shape) for s in out["scores"]] == [(8, 12)] * 4  # not nested
    paths = [v.path for v in model.weights if "prototypes" in v.path]
    assert len(paths) == 1 and paths[0].endswith("/prototypes/kernel"), paths
    config = model.get_config()
    assert config["num_prototypes"] == 12 and isinstance(config["num_prototypes"], int)


def test_one_head_as_a_tuple_trains_like_the_int():
    crops = random_crops()
    single, one_tuple = make_model(num_prototypes=12), make_model(num_prototypes=(12,))
    single(crops, training=False)
    nested = one_tuple(crops, training=False)["scores"]
    assert len(nested) == 1 and len(nested[0]) == 4
    one_tuple.set_weights(single.get_weights())
    for model in (single, one_tuple):
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    for step in range(2):
        a = single.train_on_batch(random_crops(seed=step), return_dict=True)["loss"]
        b = one_tuple.train_on_batch(random_crops(seed=step), return_dict=True)["loss"]
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(kernels(one_tuple)[0], kernels(single)[0], atol=1e-6)


def test_loss_matches_numpy_reference_with_one_shared_queue():
    batch, length = 8, 16
    model = make_model(queue_length=length)
    # lr = 0: the weights stay fixed, so the expected losses can be recomputed.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    used = 0
    for step in range(4):
        crops = random_crops(batch, seed=step)
        embeddings = [numpy(e) for e in model(crops, training=True)["embeddings"]]
        queue = numpy(model.queue.values)
        full = int(numpy(model.queue.filled)) == length
        loss = model.train_on_batch(crops, return_dict=True)["loss"]
        expected = ref.multi_head_swav_loss(embeddings, kernels(model),
                                            queue=queue if full else None)
        np.testing.assert_allclose(loss, expected, rtol=1e-4)
        # The mean over heads differs from the first head's loss: the test can fail.
        first = ref.multi_head_swav_loss(embeddings, kernels(model)[:1],
                                         queue=queue if full else None)
        assert abs(first - expected) > 1e-3
        used += full
    assert used == 2  # steps 0-1 fill the queue, steps 2-3 use it
    # The queue holds the embeddings once, for all heads.
    assert tuple(model.queue.values.shape) == (2, length, 8)


def test_each_head_gets_its_share_of_the_gradient():
    lr = 0.5
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(lr))
    crops = random_crops(seed=5)
    embeddings = [numpy(e) for e in model(crops, training=True)["embeddings"]]
    before = kernels(model)
    model.train_on_batch(crops)
    gradients = ref.multi_head_kernel_gradients(embeddings, before)
    for kernel, gradient, after in zip(before, gradients, kernels(model)):
        stepped = kernel - lr * gradient
        expected = stepped / (1e-7 + np.linalg.norm(stepped, axis=0, keepdims=True))  # UnitNorm
        np.testing.assert_allclose(after, expected, atol=1e-5)
        assert np.abs(after - kernel).max() > 1e-3


def test_freezing_and_unit_norm_apply_to_every_head():
    model = make_model(freeze_prototypes_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9))
    model(random_crops(), training=False)
    initial = kernels(model)
    for step in range(2):
        model.train_on_batch(random_crops(seed=step))
        for kernel, start in zip(kernels(model), initial):
            np.testing.assert_allclose(kernel, start, atol=1e-6)
    model.train_on_batch(random_crops(seed=2))
    for kernel, start in zip(kernels(model), initial):
        assert np.abs(kernel - start).max() > 1e-4
        np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-6)


def test_config_and_keras_round_trip(tmp_path):
    model = make_model(num_prototypes=[12, 7, 5], queue_length=16)
    crops = random_crops()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.train_on_batch(crops)
    assert model.num_prototypes == HEADS
    config = model.get_config()
    assert config["num_prototypes"] == [12, 7, 5]
    assert SwAV.from_config(config).num_prototypes == HEADS
    path = str(tmp_path / "swav.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.num_prototypes == HEADS
    for a, b in zip(kernels(model), kernels(loaded)):
        np.testing.assert_array_equal(a, b)
    expected, actual = model(crops, training=False), loaded(crops, training=False)
    for head_a, head_b in zip(expected["scores"], actual["scores"]):
        for a, b in zip(head_a, head_b):
            np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-6)
    np.testing.assert_array_equal(numpy(model.queue.values), numpy(loaded.queue.values))


@pytest.mark.parametrize(
    "value,error",
    [((), ValueError), ((12, 0), ValueError), ([3, -1], ValueError), (2.5, TypeError),
     ("12", TypeError), ((12, 2.5), TypeError), ((12, True), TypeError), (None, TypeError)],
)
def test_num_prototypes_errors(value, error):
    with pytest.raises(error) as info:
        make_model(num_prototypes=value)
    assert str(info.value) == (
        "`num_prototypes` must be a positive integer or a non-empty list or tuple of positive "
        f"integers; received num_prototypes={value!r}."
    )


def _one_batch(crops):
    return tf.data.Dataset.from_tensor_slices(crops).batch(8).map(lambda *c: (c,))


def test_assignment_monitor_counts_and_revives_the_first_head():
    model = make_model(num_prototypes=(40, 6))
    crops = random_crops()
    model(crops, training=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    before = kernels(model)
    monitor = AssignmentMonitor(reinitialize_unused=True, verbose=0)
    seen = keras.callbacks.LambdaCallback(  # the epoch's counts, before the monitor resets them
        on_epoch_end=lambda *_: seen.__dict__.update(counts=numpy(model.prototype_counts)))
    history = model.fit(_one_batch(crops), epochs=1, verbose=0, callbacks=[seen, monitor])
    counts = seen.counts
    assert counts.shape == (40,) and counts.sum() == 8  # first assignment crop, first head
    won = counts > 0
    assert history.history["prototypes_won"] == [int(won.sum())]
    first, second = kernels(model)
    np.testing.assert_allclose(first[:, won], before[0][:, won], atol=1e-6)
    assert np.all(np.abs(first[:, ~won] - before[0][:, ~won]).max(axis=0) > 1e-3)
    np.testing.assert_allclose(np.linalg.norm(first, axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(second, before[1], atol=1e-6)  # the other head is left alone


def test_assignment_monitor_plateau_is_the_mean_of_the_heads_ln_k():
    model = make_model(num_prototypes=(16, 4))
    crops = random_crops()
    model(crops, training=False)
    # Every head collapsed: all its prototypes the same vector, predictions uniform.
    for head in model.prototype_heads():
        kernel = np.zeros(tuple(head.kernel.shape), "float32")
        kernel[0] = 1.0
        head.kernel.assign(kernel)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    monitor = AssignmentMonitor(verbose=0)
    history = model.fit(_one_batch(crops), epochs=1, verbose=0, callbacks=[monitor])
    uniform = (math.log(16) + math.log(4)) / 2
    np.testing.assert_allclose(history.history["loss"][0], uniform, rtol=1e-5)
    assert any("sits at ln(K)" in m for _, m in monitor.warnings), monitor.warnings
