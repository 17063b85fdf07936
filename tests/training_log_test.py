"""Tests of the pretraining recipe's `TrainingLog`: Keras's CSV log with resumed epochs marked."""

import csv

import keras
import numpy as np

from recipes.training_log import TrainingLog, logged_metrics


def _fit(path, epochs, resumed_at_step=0):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((8, 2), "float32")
    model.fit(x, x[:, :1], epochs=epochs, verbose=0,
              callbacks=[TrainingLog(path, resumed_at_step)])


def _rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_marks_the_first_epoch_of_a_resumed_fit_only(tmp_path):
    path = str(tmp_path / "log.csv")
    _fit(path, epochs=1)
    _fit(path, epochs=2, resumed_at_step=3)
    assert [row["resumed_at_step"] for row in _rows(path)] == ["0", "3", "0"]
    assert logged_metrics(path) == ["loss"]


def test_a_log_written_without_the_column_gets_it_before_rows_are_appended(tmp_path):
    path = str(tmp_path / "log.csv")
    keras.utils.set_random_seed(0)
    with open(path, "w", newline="") as file:  # what keras.callbacks.CSVLogger wrote
        file.write("epoch,loss,val_loss\n0,0.5,NA\n")
    _fit(path, epochs=1, resumed_at_step=2)
    with open(path, newline="") as file:
        header = next(csv.reader(file))
    assert header == ["epoch", "loss", "resumed_at_step", "val_loss", "val_resumed_at_step"]
    rows = _rows(path)
    assert [(row["loss"] != "NA", row["resumed_at_step"]) for row in rows] == [
        (True, "0"), (True, "2")]
    assert rows[0]["loss"] == "0.5" and rows[0]["val_resumed_at_step"] == "NA"
