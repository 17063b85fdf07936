"""The pretraining recipe's `training_log.csv`: Keras's CSVLogger, resumed epochs marked."""

import csv
import os

import keras

# 0 for an epoch run whole; k for an epoch resumed after its step k, whose row then averages
# only its steps k+1 to the last (the metrics of steps 1..k went with the killed process).
RESUMED_AT_STEP = "resumed_at_step"


class TrainingLog(keras.callbacks.CSVLogger):
    """`keras.callbacks.CSVLogger(path, append=True)` with a `resumed_at_step` column.

    Args:
        path: the CSV file, appended to.
        resumed_at_step: int >= 0, the steps of the first epoch that an earlier run did.
            Defaults to `0`.
    """

    def __init__(self, path, resumed_at_step=0):
        super().__init__(path, append=True)
        self.resumed_at_step = resumed_at_step

    def on_train_begin(self, logs=None):
        _add_mark_column(self.filename)  # a log written before the column existed
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._mark = self.resumed_at_step
        self.resumed_at_step = 0  # only the first epoch of this `fit` is the resumed one

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {**(logs or {}), RESUMED_AT_STEP: self._mark})


def _add_mark_column(path):
    """Rewrites an existing log without the column with it (0 in each row), atomically."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        header, rows = reader.fieldnames or [], list(reader)
    if RESUMED_AT_STEP in header:
        return
    # As CSVLogger orders its columns: `epoch`, the sorted keys, then a `val_` twin of each
    # when the logs had none (NA throughout).
    keys = sorted([h for h in header if h != "epoch" and not h.startswith("val_")]
                  + [RESUMED_AT_STEP])
    twins = [f"val_{k}" for k in keys] if any(h.startswith("val_") for h in header) else []
    with open(path + ".tmp", "w", newline="") as file:
        writer = csv.DictWriter(file, ["epoch", *keys, *twins], restval="NA")
        writer.writeheader()
        writer.writerows({**row, RESUMED_AT_STEP: "0"} for row in rows)
    os.replace(path + ".tmp", path)


def logged_metrics(path):
    """The metrics of the log at `path` (`val_` twins aside), without the resumed mark."""
    with open(path, newline="") as file:
        header = next(csv.reader(file), [])
    return [name for name in header
            if name not in ("epoch", RESUMED_AT_STEP) and not name.startswith("val_")]
