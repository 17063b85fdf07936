"""A PNG of the per-epoch loss and metrics of a training run, from its History or CSV log."""

import csv
import math
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from swav_keras.visualization.multicrops import save

_PANEL_INCHES = (3.6, 2.5)
_COLUMNS = 3


def plot_training_curves(history, path, metrics=None, title=None):
    """Draws one panel per logged metric against the epoch, and writes a PNG.

    A glance at the curves tells whether a run learns, plateaus, collapses (SwAV's
    `prototypes_used` falling to 1, `assignment_entropy` to 0) or diverges, which a column
    of numbers hides. Each metric gets its own panel (`loss` first); a `val_` metric shares
    its training metric's panel, dashed. The legend gives each curve's last value. NaN values
    (a `CSVLogger`'s "NA", e.g. epochs without validation) are skipped: the line joins the
    epochs that have a value, and a metric with no value at all is not drawn. Uses
    matplotlib's Agg canvas: no screen needed.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns), its `history` dict
            (metric name -> one value per epoch), or the path of a `keras.callbacks.CSVLogger`
            file (an `epoch` column, 0-based, and one column per metric).
        path: where to write the PNG (parent folders are created).
        metrics: optional sequence of metric names to draw (without `val_`), in that order.
            Defaults to `None`: all of them.
        title: optional figure title. Defaults to `None`.

    Returns:
        `path`.

    Example:

    ```python
    import keras
    from swav_keras.visualization import plot_training_curves

    history = model.fit(dataset, epochs=20, callbacks=[keras.callbacks.CSVLogger("log.csv")])
    plot_training_curves(history, "curves.png")
    plot_training_curves("log.csv", "curves.png")  # the same, from the log
    ```
    """
    epochs, columns = _read(history)
    # Columns without a single value (CSVLogger writes `val_*` as "NA" when there is no
    # validation) would only add empty legend entries.
    columns = {k: v for k, v in columns.items() if np.isfinite(v).any()} or columns
    groups = {}
    for name in columns:
        base = name[4:] if name.startswith("val_") and name[4:] in columns else name
        groups.setdefault(base, []).append(name)
    names = sorted(groups, key=lambda base: base != "loss")  # stable: loss first
    if metrics is not None:
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in wanted if m not in groups]
        if unknown or not wanted:
            raise ValueError(
                f"`metrics` must name logged metrics ({', '.join(names)}); "
                f"received metrics={metrics!r}."
            )
        names = wanted

    cols = min(_COLUMNS, len(names))
    rows = math.ceil(len(names) / cols)
    figure = Figure(figsize=(_PANEL_INCHES[0] * cols, _PANEL_INCHES[1] * rows + 0.4 * bool(title)))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, base in zip(axes, names):
        for name in sorted(groups[base], key=lambda n: n.startswith("val_")):
            values = columns[name]
            finite = np.isfinite(values)  # NaN: epochs without this metric (CSVLogger "NA")
            last = f"{values[finite][-1]:.4g}" if finite.any() else "nan"
            style = "--" if name.startswith("val_") else "-"
            marker = "o" if len(epochs) <= 30 else None
            ax.plot(
                epochs[finite],
                values[finite],
                style,
                marker=marker,
                markersize=3,
                label=f"{name} ({last})",
            )
        ax.set_title(base, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save(figure, path)


def _read(history):
    """`(epochs [E], {name: float array [E]})` of a History, a dict or a CSVLogger file."""
    epochs = None
    if hasattr(history, "history") and isinstance(history.history, dict):
        epochs = getattr(history, "epoch", None)
        history = history.history
    if isinstance(history, (str, os.PathLike)):
        return _read_csv(history)
    if not isinstance(history, dict):
        raise TypeError(
            "`history` must be a keras.callbacks.History, a dict of per-epoch values or the "
            f"path of a CSVLogger file; received history of type {type(history).__name__}."
        )
    columns = {}
    for name, values in history.items():
        columns[name] = np.asarray(values, dtype="float64").reshape(-1)
    if not columns or not any(len(v) for v in columns.values()):
        raise ValueError(
            "`history` must hold at least one metric with one value per epoch; "
            f"received history={history!r}."
        )
    length = len(columns["loss"] if "loss" in columns else next(iter(columns.values())))
    for name, values in columns.items():
        if len(values) != length:
            raise ValueError(
                f"`history[{name!r}]` must have one value per epoch ({length}); "
                f"received len(history[{name!r}])={len(values)}."
            )
    if epochs is None or len(epochs) != length:
        epochs = range(length)
    return np.asarray(epochs, dtype="float64") + 1, columns


def _read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    columns = {}
    for name in rows[0].keys() if rows else ():
        values = [_number(row[name]) for row in rows]
        if name and all(v is not None for v in values):  # numeric columns only
            columns[name] = np.asarray(values, dtype="float64")
    epochs = columns.pop("epoch", None)
    if not columns:
        raise ValueError(
            "`history` must hold at least one metric with one value per epoch; "
            f"received history={os.fspath(path)!r} with no numeric metric column."
        )
    if epochs is None:
        epochs = np.arange(len(rows), dtype="float64")
    return epochs + 1, columns


def _number(text):
    if text is None or text.strip() in ("", "NA", "nan", "NaN"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None
