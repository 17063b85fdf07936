"""Tests of `AssignmentMonitor` on a forced collapse."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from swav_keras import SwAV
from swav_keras.callbacks import AssignmentMonitor


def _model_and_data(num_prototypes=16):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = SwAV(keras.Model(inputs, x), projection_dim=8, hidden_dim=16,
                 num_prototypes=num_prototypes)
    rng = np.random.default_rng(0)
    crops = tuple(rng.uniform(0, 1, (64, s, s, 1)).astype("float32") for s in (12, 12, 6, 6))
    dataset = tf.data.Dataset.from_tensor_slices(crops).batch(16).map(lambda *c: (c,))
    model(crops, training=False)
    # Force a collapse: every prototype is the same vector, so every sample picks prototype 0
    # and every prediction is uniform (loss = ln K).
    kernel = np.zeros(tuple(model.prototypes.kernel.shape), "float32")
    kernel[0, :] = 1.0
    model.prototypes.kernel.assign(kernel)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model, dataset


def test_warns_on_forced_collapse_and_plateau():
    model, dataset = _model_and_data()
    monitor = AssignmentMonitor(verbose=0)
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=[monitor])
    assert history.history["prototypes_won"] == [1]
    np.testing.assert_allclose(history.history["loss"][0], math.log(16), rtol=1e-5)
    messages = [m for _, m in monitor.warnings]
    assert any(m.startswith("assignments collapsed: only 1 of 16 prototypes") for m in messages)
    assert any("sits at ln(K)" in m for m in messages)


def test_no_warning_on_healthy_assignments():
    model, dataset = _model_and_data()
    kernel = np.random.default_rng(1).normal(size=tuple(model.prototypes.kernel.shape))
    model.prototypes.kernel.assign((kernel / np.linalg.norm(kernel, axis=0)).astype("float32"))
    monitor = AssignmentMonitor(verbose=0, collapse_fraction=0.1)
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=[monitor])
    assert history.history["prototypes_won"][0] >= 2
    assert monitor.warnings == []


def test_warns_when_the_epoch_loss_rises():
    model, _ = _model_and_data()
    monitor = AssignmentMonitor(verbose=0, rise_tolerance=0.05)
    monitor.set_model(model)
    for epoch, loss in enumerate([4.16, 4.0, 4.19, 4.45]):
        monitor.on_epoch_end(epoch, {"loss": loss})
    rises = [(e, m) for e, m in monitor.warnings if "rose" in m]
    # 4.0 -> 4.19 is within 5%; 4.19 -> 4.45 is not.
    assert [e for e, _ in rises] == [3], monitor.warnings
    assert rises[0][1].startswith("the epoch loss rose from 4.1900 to 4.4500. If a feature queue")


def test_reinitializes_unused_prototypes():
    model, dataset = _model_and_data()
    # One healthy direction per sample region is not needed: reviving copies prototype 0 with
    # noise, which breaks the tie so several prototypes win in the next epoch.
    monitor = AssignmentMonitor(verbose=0, reinitialize_unused=True, noise=0.5)
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[monitor])
    kernel = keras.ops.convert_to_numpy(model.prototypes.kernel)
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-5)
    assert np.unique(np.round(kernel, 5), axis=1).shape[1] == 16
    won = history.history["prototypes_won"]
    assert won[0] == 1 and won[1] > 1, won


def test_a_resumed_epoch_counts_on_from_the_restored_counts():
    # A mid-epoch backup holds the counts of the epoch's first steps; the rest adds to them,
    # and the epoch's end starts them over for the next.
    model, dataset = _model_and_data()
    model.prototype_counts.assign(np.ones(16, "float32"))  # as restored: all 16 won a sample
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=[AssignmentMonitor(verbose=0)])
    assert history.history["prototypes_won"] == [16]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.prototype_counts), 0.0)


def test_reinitialization_draws_depend_on_the_epoch_not_on_the_history():
    model, _ = _model_and_data()
    kernel = keras.ops.convert_to_numpy(model.prototypes.kernel)
    counts = np.zeros(16, "float32")
    counts[:3] = 5.0

    def revived(epochs_seen):
        monitor = AssignmentMonitor(verbose=0, reinitialize_unused=True, seed=2)
        monitor.set_model(model)
        for epoch in epochs_seen:
            model.prototypes.kernel.assign(kernel)
            model.prototype_counts.assign(counts)
            monitor.on_epoch_end(epoch, {})
        return keras.ops.convert_to_numpy(model.prototypes.kernel)

    resumed = revived([4])  # a run resumed at epoch 4: its first re-initialisation
    np.testing.assert_array_equal(revived([2, 3, 4]), resumed)
    assert np.abs(revived([3]) - resumed).max() > 0.01
    np.testing.assert_array_equal(resumed[:, :3], kernel[:, :3])


def test_needs_a_swav_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError) as info:
        model.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0, callbacks=[AssignmentMonitor()])
    assert str(info.value) == (
        "AssignmentMonitor needs a swav_keras.SwAV model (with `prototype_counts`); "
        "received a Functional."
    )


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"collapse_fraction": 0}, ValueError,
         "`collapse_fraction` must be a positive number; received collapse_fraction=0."),
        ({"collapse_fraction": 1.5}, ValueError,
         "`collapse_fraction` must be <= 1.0; received collapse_fraction=1.5."),
        ({"reinitialize_unused": 1}, TypeError,
         "`reinitialize_unused` must be a bool; received reinitialize_unused=1."),
        ({"noise": -1}, ValueError, "`noise` must be >= 0.0; received noise=-1."),
        ({"seed": -1}, ValueError, "`seed` must be an integer >= 0; received seed=-1."),
        ({"rise_tolerance": -0.1}, ValueError,
         "`rise_tolerance` must be >= 0.0; received rise_tolerance=-0.1."),
    ],
)
def test_errors(kwargs, error, message):
    with pytest.raises(error) as info:
        AssignmentMonitor(**kwargs)
    assert str(info.value) == message


def test_get_config():
    config = AssignmentMonitor(
        collapse_fraction=0.2, rise_tolerance=0.1, reinitialize_unused=True
    ).get_config()
    assert config["collapse_fraction"] == 0.2 and config["reinitialize_unused"] is True
    assert config["rise_tolerance"] == 0.1
    assert AssignmentMonitor(**config).get_config() == config
