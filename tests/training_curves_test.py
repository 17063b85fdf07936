"""Tests of `swav_keras.visualization.plot_training_curves` (PNG written and read back)."""

import keras
import matplotlib.image
import numpy as np
import pytest

from swav_keras.visualization.training_curves import plot_training_curves

# One panel is 3.6 x 2.5 inches at 100 dpi, up to 3 panels a row.
_PANEL_W, _PANEL_H = 360, 250


def _size(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.05  # something was drawn
    return image.shape[:2]


def test_history_and_csv_log_of_a_real_fit(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    log = str(tmp_path / "log.csv")
    history = model.fit(
        x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[keras.callbacks.CSVLogger(log)]
    )
    # loss + val_loss share a panel, accuracy + val_accuracy another: 2 panels.
    assert _size(plot_training_curves(history, str(tmp_path / "h.png"))) == (_PANEL_H, 2 * _PANEL_W)
    assert _size(plot_training_curves(history.history, str(tmp_path / "d.png"))) == (
        _PANEL_H,
        2 * _PANEL_W,
    )
    assert _size(plot_training_curves(log, str(tmp_path / "c.png"))) == (_PANEL_H, 2 * _PANEL_W)


def test_many_metrics_wrap_and_can_be_selected(tmp_path):
    history = {
        "loss": [4.8, 4.1, 3.5, 3.2],
        "prototypes_used": [12, 40, 90, 120],
        "assignment_entropy": [1.0, 2.5, 3.8, 4.2],
        "learning_rate": [0.6, 0.5, 0.3, 0.1],
    }
    path = plot_training_curves(history, str(tmp_path / "all.png"), title="SwAV")
    assert _size(path) == (2 * _PANEL_H + 40, 3 * _PANEL_W)  # 4 panels: 3 + 1, title 0.4 in
    path = plot_training_curves(history, str(tmp_path / "one.png"), metrics=["loss"])
    assert _size(path) == (_PANEL_H, _PANEL_W)


def test_csv_with_missing_validation_epochs(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,val_loss,note\n0,3.0,3.2,a\n1,2.5,NA,b\n2,2.0,2.4,c\n")
    assert _size(plot_training_curves(log, str(tmp_path / "c.png"))) == (_PANEL_H, _PANEL_W)


def test_metric_without_any_value_is_not_drawn(tmp_path):
    # A CSVLogger writes val_* columns as "NA" on every epoch when fit has no validation data.
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,val_acc\n0,3.0,NA\n1,2.5,NA\n")
    assert _size(plot_training_curves(log, str(tmp_path / "c.png"))) == (_PANEL_H, _PANEL_W)
    with pytest.raises(ValueError, match="must name logged metrics \\(loss\\)"):
        plot_training_curves(log, str(tmp_path / "x.png"), metrics=["val_acc"])


def _error(history, **kwargs):
    with pytest.raises((ValueError, TypeError)) as info:
        plot_training_curves(history, "/nonexistent/never_written.png", **kwargs)
    return str(info.value)


def test_errors(tmp_path):
    assert _error({"loss": [3.0, 2.0, 1.0], "val_loss": [3.0, 2.0]}) == (
        "`history['val_loss']` must have one value per epoch (3); "
        "received len(history['val_loss'])=2."
    )
    assert _error({}) == (
        "`history` must hold at least one metric with one value per epoch; received history={}."
    )
    assert _error({"loss": [1.0, 0.5]}, metrics=["acc"]) == (
        "`metrics` must name logged metrics (loss); received metrics=['acc']."
    )
    assert _error([1.0, 0.5]) == (
        "`history` must be a keras.callbacks.History, a dict of per-epoch values or the path "
        "of a CSVLogger file; received history of type list."
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,note\n0,a\n")
    assert _error(str(empty)) == (
        "`history` must hold at least one metric with one value per epoch; "
        f"received history={str(empty)!r} with no numeric metric column."
    )
