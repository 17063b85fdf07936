"""Keras's `BackupAndRestore`, made to resume inside an epoch rather than at its start."""

import json
import os
import warnings

import h5py
import keras

from swav_keras.keras_internals import set_initial_epoch


class MidEpochBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Backs up training every few steps and at each epoch's end; knows where it stopped.

    Keras 3.15's `BackupAndRestore(save_freq=N)` saves every N steps but resumes at the start
    of the interrupted epoch, so the steps already done in it are trained again (and the
    learning-rate schedule, which follows the restored step counter, overruns); it also saves
    no longer at the epoch's end, and after a resume it records epoch 0 in its mid-epoch
    backups. This callback saves at every epoch's end and every `save_every_steps` steps, and
    records how many steps of the epoch were done (`steps_done`). `position()` reads it, so
    a resumed run can finish the interrupted epoch with only its remaining batches:

    ```python
    from swav_keras.callbacks import MidEpochBackupAndRestore, StopAfterEpoch

    epochs = 10
    backup = MidEpochBackupAndRestore("run/backup", save_every_steps=100)
    epoch, steps_done = backup.position()
    if steps_done:  # finish the interrupted epoch first, with its remaining batches
        model.fit(dataset.skip(steps_done), epochs=epochs, callbacks=[backup, StopAfterEpoch()])
    model.fit(dataset, epochs=epochs, callbacks=[backup])
    ```

    (`recipes/pretrain.py` does this, with one `fit` per epoch.) The step count, schedule and
    state continue exactly; the images do too where the input serves epoch `e` by its index (an
    `ImageBatches` after `set_epoch(epoch, skip=steps_done)`, or a tf.data pipeline built for
    that epoch and seeded by it, as the recipe does), while `dataset.skip` on one reshuffled
    tf.data pipeline makes the rest of that epoch a new random draw. No backup is written
    after an epoch's last step: the epoch-end backup follows at once.

    A backup is one file, `latest.weights.h5`, holding the weights, the optimizer state and
    the position; it is written under another name and renamed into place, so a kill at any
    moment leaves a whole backup (`training_metadata.json` beside it is a copy for people).
    A backup that cannot be read is named in a warning and the previous one is used.

    Reference: the original saves once per epoch (`checkpoint_freq`); Caron et al., "Unsupervised
    Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020.

    Args:
        backup_dir: folder of the backup (a local path).
        save_every_steps: int >= 0, steps between backups within an epoch (0: at epoch ends
            only). A backup costs one `save_weights`. Defaults to `0`.
        double_checkpoint: bool, keep the previous backup beside the latest, restored if the
            latest cannot be read. Defaults to `True`.
        delete_checkpoint: bool, delete the backup when training ends. Defaults to `False`.
    """

    def __init__(self, backup_dir, save_every_steps=0, double_checkpoint=True,
                 delete_checkpoint=False):
        if isinstance(save_every_steps, bool) or not isinstance(save_every_steps, int) or (
            save_every_steps < 0
        ):
            raise ValueError(
                "`save_every_steps` must be an int >= 0 (0: at epoch ends only); received "
                f"save_every_steps={save_every_steps!r}."
            )
        super().__init__(
            backup_dir,
            save_freq=save_every_steps or "epoch",
            double_checkpoint=double_checkpoint,
            delete_checkpoint=delete_checkpoint,
        )
        self.save_every_steps = save_every_steps
        self._steps_done = 0
        self._offset = 0
        self._expected = None

    def position(self):
        """`(epoch, steps_done)` of the backup on disk: the epoch to run next (0-based) and
        how many of its steps are already done; `(0, 0)` when there is no backup yet."""
        self._expected = self._readable_backup()[1]
        return self._expected

    def restore(self, model):
        """Loads the backup into the built `model` outside `fit` and returns its position.

        For a run with no step left to train (a finished run started again): `fit` is not
        called, so nothing else would restore the trained weights before the model is used
        or saved. Falls back to the previous backup as `fit` does; without a backup the
        model is left as it is and `(0, 0)` is returned.
        """
        self.position()
        self.set_model(model)
        self.on_train_begin()
        return self._current_epoch, self._offset

    def on_train_begin(self, logs=None):
        restored, problems = (0, 0), []
        for path, position in self._backups():
            if isinstance(position, Exception):
                problems.append(f"{path}: {position}")
                continue
            try:
                if path == self._prev_weights_path:  # Keras reads `.weights.h5` files only
                    _copy(path, self._weights_path)
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(self._weights_path)
            except (OSError, ValueError, KeyError) as error:
                problems.append(f"{path}: {error}")
                continue
            restored = position
            set_initial_epoch(self.model, position[0])
            break
        else:
            if problems:
                raise RuntimeError(
                    f"No backup in {self.backup_dir} can be loaded into this model: "
                    f"{'; '.join(problems)}. If the model changed since they were written, use "
                    f"another --workdir; to start this run over, delete {self.backup_dir}."
                )
        if self._expected is not None and restored != self._expected:
            why = problems[0] if problems else "it changed"
            raise RuntimeError(
                f"The backup this run was set up to continue from (epoch {self._expected[0]}, "
                f"step {self._expected[1]}) could not be loaded ({why}); "
                f"the previous one was (epoch {restored[0]}, step {restored[1]}). Nothing was "
                "lost: run the same command again to resume from it."
            )
        self._current_epoch, self._offset = restored
        self._expected = None  # checked once: a later `fit` starts from wherever this ends

    def _backups(self):
        """`(path, (epoch, steps_done))` of each backup whose position reads, newest first."""
        found = []
        for path, metadata_path in (
            (self._weights_path, self._training_metadata_path),
            (self._prev_weights_path, self._prev_training_metadata_path),
        ):
            if os.path.exists(path):
                try:
                    found.append((path, _read_position(path, metadata_path)))
                except (OSError, ValueError, KeyError) as error:
                    found.append((path, error))
        return found

    def _readable_backup(self):
        """`(path, (epoch, steps_done))` of the newest backup that reads; `(None, (0, 0))`
        without one. Raises a `RuntimeError` naming the files when none of them reads."""
        problems = []
        for path, position in self._backups():
            if isinstance(position, Exception):
                problems.append(f"{path}: {position}")
                continue
            if problems:
                warnings.warn(
                    f"The latest backup cannot be read ({problems[0]}); resuming from the "
                    f"previous one, {path} (epoch {position[0]}, step {position[1]}).",
                    stacklevel=3,
                )
            return path, position
        if problems:
            raise RuntimeError(
                f"No backup in {self.backup_dir} can be read: {'; '.join(problems)}. Delete "
                f"{self.backup_dir} to start the run over (the encoder.keras beside it, if "
                "any, holds the last finished epoch)."
            )
        return None, (0, 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = self._offset + batch + 1
        if self._should_save_on_batch(batch) and batch + 1 != (self.params or {}).get("steps"):
            # Not after an epoch's last step: the epoch-end backup follows at once, and a kill
            # between the two would leave a position (epoch, all its steps done) from which
            # the epoch's end (its callbacks, the counts they reset) could not be replayed.
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch, self._steps_done, self._offset = epoch + 1, 0, 0
        self._last_batch_seen = 0
        self._batches_seen_since_last_saving = 0
        self._save_model()

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._weights_path):
            _copy(self._weights_path, self._prev_weights_path)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                    "steps_done": self._steps_done}
        # Weights, optimizer state and position in one file, renamed into place: the rename
        # is the one step that replaces a backup, so no kill pairs new weights with an old
        # position.
        temporary = self._weights_path[: -len(".weights.h5")] + ".tmp.weights.h5"
        self.model.save_weights(temporary, overwrite=True)
        with h5py.File(temporary, "r+") as f:
            f.attrs[_POSITION_KEY] = json.dumps(metadata)
        os.replace(temporary, self._weights_path)
        temporary = f"{self._training_metadata_path}.tmp"
        with open(temporary, "w") as f:
            json.dump(metadata, f)
        os.replace(temporary, self._training_metadata_path)

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "save_every_steps": self.save_every_steps,
            "double_checkpoint": self.double_checkpoint,
            "delete_checkpoint": self.delete_checkpoint,
        }


class StopAfterEpoch(keras.callbacks.Callback):
    """Ends `fit` after its first epoch (to finish an interrupted epoch on its own)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


_POSITION_KEY = "swav_keras_backup_position"


def _read_position(weights_path, metadata_path):
    """The position a backup file records; older backups keep it in `metadata_path` only."""
    with h5py.File(weights_path, "r") as f:
        recorded = f.attrs.get(_POSITION_KEY)
    if recorded is None:
        with open(metadata_path) as f:
            recorded = f.read()
    try:
        metadata = json.loads(recorded)
    except json.JSONDecodeError as error:
        raise ValueError(f"its position is not valid JSON ({error})") from error
    return (int(metadata["epoch"]), int(metadata.get("steps_done", 0)))


def _copy(source, destination):
    temporary = f"{destination}.tmp"
    with open(source, "rb") as s, open(temporary, "wb") as d:
        d.write(s.read())
    os.replace(temporary, destination)
