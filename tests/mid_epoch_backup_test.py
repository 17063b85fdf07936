"""Tests of `MidEpochBackupAndRestore`: where it saves, what it records, how a run resumes."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from step_interrupt import StepInterrupt

from swav_keras.callbacks import MidEpochBackupAndRestore, StopAfterEpoch

STEPS = 6  # batches per epoch


class Log(keras.callbacks.Callback):
    """Records (epoch, batch index) of every step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append((self.epoch, batch))


def make_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    return model


def dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * STEPS, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


def metadata(backup_dir):
    with open(os.path.join(backup_dir, "training_metadata.json")) as f:
        return json.load(f)


def resumable_fit(model, backup_dir, epochs, every, extra=()):
    """What `recipes/pretrain.py` does: finish an interrupted epoch, then the others."""
    backup = MidEpochBackupAndRestore(backup_dir, save_every_steps=every)
    epoch, done = backup.position()
    if done:
        model.fit(dataset().skip(done), epochs=epochs, verbose=0,
                  callbacks=[backup, *extra, StopAfterEpoch()])
        epoch += 1
    if epoch < epochs:
        model.fit(dataset(), epochs=epochs, verbose=0, callbacks=[backup, *extra])
    return model


def interrupted_fit(backup_dir, save_every_steps):
    """Plain `fit` for 3 epochs, stopped after step 5 of epoch 1."""
    with pytest.raises(KeyboardInterrupt):
        make_model().fit(dataset(), epochs=3, verbose=0, callbacks=[
            MidEpochBackupAndRestore(backup_dir, save_every_steps=save_every_steps),
            StepInterrupt(STEPS + 5)])


def test_records_the_epoch_and_the_steps_done(tmp_path):
    backup_dir = str(tmp_path / "backup")
    interrupted_fit(backup_dir, save_every_steps=4)
    # Saved at the end of epoch 0, then after step 4 of epoch 1 (steps 5.. not saved).
    assert metadata(backup_dir)["epoch"] == 1 and metadata(backup_dir)["steps_done"] == 4
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, 4)
    assert MidEpochBackupAndRestore(str(tmp_path / "none")).position() == (0, 0)


def test_interrupted_run_ends_where_an_uninterrupted_one_does(tmp_path):
    reference = make_model()
    reference.fit(dataset(), epochs=3, verbose=0)

    backup_dir = str(tmp_path / "backup")
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        resumable_fit(model, backup_dir, 3, every=2, extra=[StepInterrupt(STEPS + 3)])
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, 2)
    log = Log()
    resumed = resumable_fit(make_model(), backup_dir, 3, every=2, extra=[log])
    # The rest of epoch 1 (4 steps), then epoch 2: no step run twice, none skipped.
    assert log.steps == [(1, b) for b in range(4)] + [(2, b) for b in range(STEPS)]
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 3 * STEPS
    # The data are not shuffled here, so the weights are those of the uninterrupted run.
    for w, r in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w),
                                   keras.ops.convert_to_numpy(r), rtol=1e-5, atol=1e-6)
    assert MidEpochBackupAndRestore(backup_dir).position() == (3, 0)


def test_no_mid_epoch_backup_after_an_epochs_last_step(tmp_path):
    # Killed after epoch 1's last step, before its end: the backup holds step 5 of 6, and the
    # resume runs the last step and the epoch's end (a backup of step 6/6 could not).
    reference = make_model()
    reference.fit(dataset(), epochs=3, verbose=0)
    backup_dir = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        resumable_fit(make_model(), backup_dir, 3, every=1, extra=[StepInterrupt(2 * STEPS)])
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, STEPS - 1)
    log = Log()
    resumed = resumable_fit(make_model(), backup_dir, 3, every=1, extra=[log])
    assert log.steps == [(1, 0)] + [(2, b) for b in range(STEPS)]
    for w, r in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w),
                                   keras.ops.convert_to_numpy(r), rtol=1e-5, atol=1e-6)


def test_epoch_end_only_and_arguments(tmp_path):
    backup_dir = str(tmp_path / "backup")
    interrupted_fit(backup_dir, save_every_steps=0)
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, 0)
    config = MidEpochBackupAndRestore(backup_dir, save_every_steps=7).get_config()
    assert config == {"backup_dir": backup_dir, "save_every_steps": 7,
                      "double_checkpoint": True, "delete_checkpoint": False}
    for bad in (-1, 2.0, True, "10"):
        with pytest.raises(ValueError) as e:
            MidEpochBackupAndRestore(backup_dir, save_every_steps=bad)
        assert str(e.value) == (
            "`save_every_steps` must be an int >= 0 (0: at epoch ends only); received "
            f"save_every_steps={bad!r}."
        )


def test_an_unreadable_latest_backup_is_named_and_the_previous_one_used(tmp_path):
    backup_dir = str(tmp_path / "backup")
    interrupted_fit(backup_dir, save_every_steps=4)
    latest = os.path.join(backup_dir, "latest.weights.h5")
    with open(latest, "wb") as f:
        f.write(b"not hdf5")  # the previous backup (end of epoch 0) is still whole
    backup = MidEpochBackupAndRestore(backup_dir, save_every_steps=4)
    with pytest.warns(UserWarning, match=f"latest backup cannot be read \\({latest}: .*; "
                      "resuming from the previous one, .*bkp \\(epoch 1, step 0\\)"):
        assert backup.position() == (1, 0)
    log = Log()
    make_model().fit(dataset(), epochs=3, verbose=0, callbacks=[backup, log])
    assert log.steps == [(1, b) for b in range(STEPS)] + [(2, b) for b in range(STEPS)]
    assert MidEpochBackupAndRestore(backup_dir).position() == (3, 0)


def test_no_readable_backup_says_which_files_and_what_to_do(tmp_path):
    backup_dir = str(tmp_path / "backup")
    interrupted_fit(backup_dir, save_every_steps=4)
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        path = os.path.join(backup_dir, name)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(RuntimeError) as e:
        MidEpochBackupAndRestore(backup_dir).position()
    message = str(e.value)
    assert message.startswith(f"No backup in {backup_dir} can be read: ")
    assert "latest.weights.h5: " in message and "latest.weights.h5.bkp: " in message
    assert f"Delete {backup_dir} to start the run over" in message


def test_the_position_travels_inside_the_weights_file(tmp_path):
    import h5py

    backup_dir = str(tmp_path / "backup")
    interrupted_fit(backup_dir, save_every_steps=4)
    # A kill between the weights file and its readable copy leaves a stale or empty copy:
    # the position comes from the weights file, written and renamed as one unit.
    with open(os.path.join(backup_dir, "training_metadata.json"), "w") as f:
        f.write("")
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, 4)
    # A backup written before the position moved into the file still reads its JSON copy.
    with h5py.File(os.path.join(backup_dir, "latest.weights.h5"), "r+") as f:
        del f.attrs["swav_keras_backup_position"]
    with open(os.path.join(backup_dir, "training_metadata.json"), "w") as f:
        json.dump({"epoch": 1, "batch": 3, "steps_done": 4}, f)
    assert MidEpochBackupAndRestore(backup_dir).position() == (1, 4)
    assert not [name for name in os.listdir(backup_dir) if ".tmp" in name]


def test_restore_loads_a_backup_without_fit(tmp_path):
    backup_dir = str(tmp_path / "backup")
    trained = resumable_fit(make_model(), backup_dir, epochs=2, every=4)
    fresh = make_model()
    fresh.build((None, 3))
    assert not np.allclose(fresh.get_weights()[0], trained.get_weights()[0])
    # A finished run started again has nothing to fit: restore() is what loads its weights.
    assert MidEpochBackupAndRestore(backup_dir).restore(fresh) == (2, 0)
    for got, want in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 2 * STEPS
    # Without a backup the model is left as it is.
    other = make_model()
    other.build((None, 3))
    before = other.get_weights()
    assert MidEpochBackupAndRestore(str(tmp_path / "none")).restore(other) == (0, 0)
    np.testing.assert_array_equal(other.get_weights()[0], before[0])
