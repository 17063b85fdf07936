"""Tests of the `SwAV` model: training state, queue, freezing, errors, saving."""

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf

from swav_keras import SwAV, sinkhorn


def tiny_encoder(channels=1, width=8, seed=0, kernel_regularizer=None, activity_regularizer=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(
        width, 3, padding="same", kernel_regularizer=kernel_regularizer,
        activity_regularizer=activity_regularizer, name="conv",
    )(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny_encoder")


def make_model(**kwargs):
    config = dict(projection_dim=8, hidden_dim=16, num_prototypes=12)
    config.update(kwargs)
    return SwAV(tiny_encoder(), **config)


def random_crops(batch=8, sizes=(16, 16, 8, 8), seed=0, channels=1):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(0, 1, (batch, s, s, channels)).astype("float32") for s in sizes)


def kernel(model):
    return keras.ops.convert_to_numpy(model.prototypes.kernel)


def test_forward_groups_and_outputs():
    model = make_model()
    out = model(random_crops(), training=False)
    assert len(out["scores"]) == 4 and len(out["embeddings"]) == 4
    for scores, embeddings in zip(out["scores"], out["embeddings"]):
        assert tuple(scores.shape) == (8, 12) and tuple(embeddings.shape) == (8, 8)
        e = keras.ops.convert_to_numpy(embeddings)
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
        s = keras.ops.convert_to_numpy(scores)
        assert np.all(np.abs(s) <= 1 + 1e-5)  # cosine similarities


def test_dict_input_in_natural_key_order():
    model = make_model()
    crops = random_crops(sizes=(16, 16, 8, 8) + (8,) * 7)
    as_dict = {f"crop_{i}": c for i, c in enumerate(crops)}
    from_tuple = model(crops, training=False)["scores"]
    from_dict = model(as_dict, training=False)["scores"]
    for a, b in zip(from_tuple, from_dict):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6
        )


def test_prototypes_unit_norm_after_every_step():
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9))
    before = kernel(model) if model.built else None
    for step in range(4):
        model.train_on_batch(random_crops(seed=step))
        k = kernel(model)
        np.testing.assert_allclose(np.linalg.norm(k, axis=0), 1.0, atol=1e-6)
        if before is not None:
            assert np.abs(k - before).max() > 1e-4
        before = k


def test_frozen_prototypes_unchanged_then_updated():
    model = make_model(freeze_prototypes_steps=3)
    model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9))
    model(random_crops(), training=False)
    initial = kernel(model)
    np.testing.assert_allclose(np.linalg.norm(initial, axis=0), 1.0, atol=1e-6)
    encoder_before = keras.ops.convert_to_numpy(model.encoder.weights[0])
    for step in range(3):
        model.train_on_batch(random_crops(seed=step))
        np.testing.assert_allclose(kernel(model), initial, atol=1e-6)
    # The rest of the network trains during the freeze.
    assert np.abs(keras.ops.convert_to_numpy(model.encoder.weights[0]) - encoder_before).max() > 0
    model.train_on_batch(random_crops(seed=3))
    assert np.abs(kernel(model) - initial).max() > 1e-4
    assert int(keras.ops.convert_to_numpy(model.step)) == 4


def _scores_and_embeddings(model, crops):
    out = model(crops, training=True)
    scores = [keras.ops.convert_to_numpy(s) for s in out["scores"]]
    embeddings = [keras.ops.convert_to_numpy(e) for e in out["embeddings"]]
    return scores, embeddings


def test_queue_fills_rolls_and_is_used_only_when_full():
    batch, length = 8, 16
    model = make_model(queue_length=length, queue_start_step=1)
    # lr = 0: weights stay fixed, so the expected embeddings and losses can be recomputed.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    batches = [random_crops(batch, seed=s) for s in range(5)]
    history = []  # embeddings pushed, newest last
    for step, crops in enumerate(batches):
        scores, embeddings = _scores_and_embeddings(model, crops)
        queue_before = keras.ops.convert_to_numpy(model.queue.values)
        full = int(keras.ops.convert_to_numpy(model.queue.filled)) == length
        loss = model.train_on_batch(crops, return_dict=True)["loss"]
        if full:
            k = kernel(model)
            queue_scores = [queue_before[0] @ k, queue_before[1] @ k]
            expected = ref.swav_loss(scores, (0, 1), 0.1, 0.05, 3, queue_scores=queue_scores)
        else:
            expected = ref.swav_loss(scores, (0, 1), 0.1, 0.05, 3)
        np.testing.assert_allclose(loss, expected, rtol=1e-4)
        filled = int(keras.ops.convert_to_numpy(model.queue.filled))
        if step < 1:  # before queue_start_step nothing is pushed
            assert filled == 0
            continue
        history.append(embeddings)
        assert filled == min(length, batch * len(history))
        values = keras.ops.convert_to_numpy(model.queue.values)
        for rows, pushed in zip(range(0, length, batch), reversed(history)):
            for q, crop_id in enumerate((0, 1)):
                np.testing.assert_allclose(
                    values[q, rows : rows + batch], pushed[crop_id], atol=1e-5
                )
    # Steps 1-2 fill the queue; steps 3-4 use it.
    assert len(history) == 4


def test_loss_decreases_on_learnable_data():
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 1, (6, 16, 16, 1)).astype("float32")

    def views(n, size, noise):
        labels = rng.integers(0, 6, n)
        return labels

    n = 256
    labels = rng.integers(0, 6, n)

    def crop(size):
        x = patterns[labels] + rng.normal(0, 0.15, (n, 16, 16, 1)).astype("float32")
        if size != 16:
            offset = rng.integers(0, 16 - size + 1)
            x = x[:, offset : offset + size, offset : offset + size]
        return x.astype("float32")

    crops = (crop(16), crop(16), crop(8), crop(8))
    ds = tf.data.Dataset.from_tensor_slices(crops).batch(32, drop_remainder=True)
    ds = ds.map(lambda *c: (c,))
    model = make_model(num_prototypes=12, temperature=0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    history = model.fit(ds, epochs=6, verbose=0, shuffle=False).history
    losses = history["loss"]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.1, losses


class StateAfter(keras.callbacks.Callback):
    """The model's weights and optimizer variables after training step `step`."""

    def __init__(self, step):
        super().__init__()
        self.step, self.state = step, None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.step:
            if hasattr(self.model, "jax_state_sync"):
                self.model.jax_state_sync()  # JAX keeps the state off the model mid-epoch
            self.state = state_of(self.model)


def state_of(model):
    variables = model.weights + model.optimizer.variables
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in variables}


# A NaN input; a finite input whose loss overflows (the activity regulariser squares 1e38).
@pytest.mark.parametrize("bad", [np.nan, 1e38])
def test_a_non_finite_step_fails_fast_with_its_number_and_changes_nothing(bad):
    crops = [np.array(c) for c in random_crops(batch=32)]
    crops[2][20, 1, 1, 0] = bad  # batch 3 (of 8 images each), third crop
    ds = tf.data.Dataset.from_tensor_slices(tuple(crops)).batch(8).map(lambda *c: (c,))
    model = SwAV(tiny_encoder(activity_regularizer="l2"), projection_dim=8, hidden_dim=16,
                 num_prototypes=12, queue_length=16)
    # Momentum and weight decay: a zeroed gradient would still move weights and state.
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01))
    assert type(model.optimizer).__name__ == "SkipNonFiniteOptimizer"
    after_step_2 = StateAfter(2)
    with pytest.raises(ValueError) as info:
        model.fit(ds, epochs=2, verbose=0, shuffle=False, callbacks=[after_step_2])
    assert str(info.value).startswith(
        "The input crops of training step 3 (epoch 1, batch 3) hold NaN or Inf values. "
        "That step changed nothing and training stopped" if np.isnan(bad) else
        "The loss became nan at training step 3 (epoch 1, batch 3): training diverged."
    )
    # Weights, BatchNorm statistics, queue, prototype counts, momentum, iterations: as after
    # step 2; the model's own counters (step, the bad input's step) move on.
    now = state_of(model)
    moved = [p for p in now if not np.array_equal(now[p], after_step_2.state[p])]
    counters = (model.step, model.non_finite_input_step) if np.isnan(bad) else (model.step,)
    assert sorted(moved) == sorted(v.path for v in counters), moved
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2
    assert any("moving_variance" in p for p in now)
    assert int(keras.ops.convert_to_numpy(model.queue.filled)) == 16  # 2 steps x 8


def test_get_config_round_trip_and_saving(tmp_path):
    model = make_model(queue_length=16, freeze_prototypes_steps=5, crops_for_assign=(1,),
                       temperature=0.2, epsilon=0.03, sinkhorn_iterations=4,
                       sync_batchnorm=True, hidden_layers=2)
    crops = random_crops()
    model(crops, training=False)
    config = model.get_config()
    for key, value in dict(projection_dim=8, hidden_dim=16, num_prototypes=12, queue_length=16,
                           queue_start_step=0, freeze_prototypes_steps=5, crops_for_assign=[1],
                           temperature=0.2, epsilon=0.03, sinkhorn_iterations=4,
                           sync_batchnorm=True, hidden_layers=2).items():
        assert config[key] == value, key
    clone = SwAV.from_config(config)
    assert clone.get_config()["num_prototypes"] == 12
    assert type(clone.projection_head.batchnorm).__name__ == "SyncBatchNormalization"
    assert clone.projection_head.hidden_layers == 2
    path = str(tmp_path / "swav.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    a = keras.ops.convert_to_numpy(model(crops, training=False)["scores"][0])
    b = keras.ops.convert_to_numpy(loaded(crops, training=False)["scores"][0])
    np.testing.assert_allclose(a, b, atol=1e-6)
    encoder_path = str(tmp_path / "encoder.keras")
    model.encoder.save(encoder_path)
    encoder = keras.models.load_model(encoder_path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(crops[0])),
        keras.ops.convert_to_numpy(model.encoder(crops[0])),
        atol=1e-6,
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_scores(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        crops = random_crops()
        out = model(crops, training=False)
        assert keras.backend.standardize_dtype(out["scores"][0].dtype) == "float32"
        losses = [
            model.train_on_batch(random_crops(seed=s), return_dict=True)["loss"] for s in range(3)
        ]
        assert all(np.isfinite(losses)), losses
        np.testing.assert_allclose(np.linalg.norm(kernel(model), axis=0), 1.0, atol=1e-6)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"num_prototypes": 0}, ValueError,
         "`num_prototypes` must be a positive integer; received num_prototypes=0."),
        ({"temperature": 0}, ValueError,
         "`temperature` must be a positive number; received temperature=0."),
        ({"epsilon": -0.05}, ValueError,
         "`epsilon` must be a positive number; received epsilon=-0.05."),
        ({"crops_for_assign": (0, 0)}, ValueError,
         "`crops_for_assign` must not repeat a crop; received crops_for_assign=(0, 0)."),
        ({"crops_for_assign": (-1,)}, ValueError,
         "`crops_for_assign` must hold integers >= 0; received crops_for_assign=(-1,)."),
        ({"queue_length": -8}, ValueError,
         "`queue_length` must be an integer >= 0; received queue_length=-8."),
        ({"projection_dim": 1.5}, TypeError,
         "`projection_dim` must be an integer; received projection_dim=1.5."),
        ({"hidden_layers": 0}, ValueError,
         "`hidden_layers` must be a positive integer; received hidden_layers=0."),
        ({"hidden_dim": 0, "hidden_layers": 2}, ValueError,
         "`hidden_layers` must be 1 when `hidden_dim=0` (a linear head has no hidden block); "
         "received hidden_layers=2."),
    ],
)
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error) as info:
        make_model(**kwargs)
    assert str(info.value) == message


def test_encoder_must_be_a_model():
    with pytest.raises(TypeError) as info:
        SwAV(keras.layers.Dense(3))
    assert str(info.value) == "`encoder` must be a keras.Model; received encoder of type Dense."


def _fit_error(model, crops, batch=8):
    ds = tf.data.Dataset.from_tensor_slices(tuple(crops)).batch(batch, drop_remainder=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError) as info:
        model.fit(ds.map(lambda *c: (c,)), epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.step)) == 0  # raised before any step
    # Keras prefixes errors raised inside `call` with the layer name; the message is intact.
    return str(info.value)


def test_one_crop_is_rejected():
    message = _fit_error(make_model(), random_crops(sizes=(16,)))
    assert (
        "SwAV needs at least 2 crops per image (a crop's codes are predicted from the others); "
        "received 1 crop(s)."
    ) in message


def test_crops_for_assign_out_of_range_is_rejected():
    message = _fit_error(make_model(crops_for_assign=(0, 3)), random_crops(sizes=(16, 16, 8)))
    assert (
        "`crops_for_assign` must hold crop indices in [0, 2] for 3 crops; "
        "received crops_for_assign=(0, 3)."
    ) in message


def test_queue_length_must_be_a_multiple_of_the_batch():
    message = _fit_error(make_model(queue_length=20), random_crops(batch=16))
    assert (
        "`queue_length` must be a multiple of the batch size; received queue_length=20 with "
        "batch size 8. Use e.g. queue_length=16."
    ) in message


def test_crops_with_different_batch_sizes_are_rejected():
    model = make_model()
    crops = random_crops()
    crops = (crops[0], crops[1][:6], crops[2], crops[3])
    with pytest.raises(ValueError) as info:
        model(crops, training=True)
    assert (
        "All crops must hold the same images, so the same batch size; received batch sizes "
        "[8, 6, 8, 8] for crops 0..3."
    ) in str(info.value)


@pytest.mark.parametrize("policy,tolerance", [("mixed_float16", 1e-3), ("mixed_bfloat16", 1e-2)])
def test_mixed_precision_codes_match_float32_codes(policy, tolerance):
    # The same weights under float32 and under a mixed policy. Sinkhorn adds no error of its
    # own (its input scores are float32); what differs is the encoder's low-precision
    # arithmetic: float16 keeps the codes within 1e-3, bfloat16's 8-bit mantissa within 1e-2.
    crops = random_crops(batch=32)
    reference = make_model()
    scores32 = keras.ops.convert_to_numpy(reference(crops, training=False)["scores"][0])
    weights = reference.get_weights()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = make_model()
        model(crops, training=False)
        model.set_weights(weights)
        scores = keras.ops.convert_to_numpy(model(crops, training=False)["scores"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert scores.dtype == np.float32
    codes = keras.ops.convert_to_numpy(sinkhorn(scores))
    np.testing.assert_allclose(codes, ref.sinkhorn(scores), atol=1e-5)
    np.testing.assert_allclose(codes, ref.sinkhorn(scores32), atol=tolerance)


def test_loss_and_gradient_include_regularization_losses():
    # Two models with the same weights, one with an L2 regulariser on the encoder's first
    # kernel: its loss is larger by l2 * sum(w^2) and its SGD step moves that kernel by the
    # extra -lr * 2 * l2 * w; every other weight gets the same update.
    l2, lr = 0.05, 0.1
    crops = random_crops()
    config = dict(projection_dim=8, hidden_dim=16, num_prototypes=12)
    plain = SwAV(tiny_encoder(), **config)
    regular = SwAV(tiny_encoder(kernel_regularizer=keras.regularizers.L2(l2)), **config)
    for model in (plain, regular):
        model(crops, training=False)
        model.compile(optimizer=keras.optimizers.SGD(lr))
    regular.set_weights(plain.get_weights())
    assert plain.losses == [] and len(regular.losses) == 1
    w = keras.ops.convert_to_numpy(regular.encoder.get_layer("conv").kernel)
    plain_loss = plain.train_on_batch(crops, return_dict=True)["loss"]
    regular_loss = regular.train_on_batch(crops, return_dict=True)["loss"]
    np.testing.assert_allclose(regular_loss - plain_loss, l2 * np.sum(w**2), rtol=1e-4)
    for a, b in zip(plain.trainable_weights, regular.trainable_weights):
        extra = -lr * 2 * l2 * w if b.path.endswith("conv/kernel") else 0.0
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(b) - keras.ops.convert_to_numpy(a), extra, atol=1e-6,
            err_msg=b.path,
        )


@pytest.mark.parametrize("setting, replicas, synchronized", [
    ("auto", 1, False), ("auto", 2, True), (True, 1, True), (False, 2, False)])
def test_sync_batchnorm_synchronises_encoder_and_head(monkeypatch, setting, replicas,
                                                      synchronized):
    from swav_keras import backends

    monkeypatch.setattr(backends.active(), "num_replicas", lambda: replicas)
    model = make_model(sync_batchnorm=setting)
    batchnorm = model.encoder.layers[2]
    assert type(batchnorm) is keras.layers.BatchNormalization  # the encoder keeps its class
    assert ("_moments" in batchnorm.__dict__) == synchronized
    head = type(model.projection_head.batchnorm).__name__
    assert head == ("SyncBatchNormalization" if synchronized else "BatchNormalization")
    assert model.get_config()["sync_batchnorm"] == setting


def test_sync_batchnorm_must_be_auto_or_a_bool():
    with pytest.raises(TypeError, match=r"^`sync_batchnorm` must be 'auto' or a bool; received "
                                        r"sync_batchnorm='yes'\.$"):
        make_model(sync_batchnorm="yes")
