"""Watches how samples spread over the prototypes, warns on collapse, revives dead prototypes."""

import math

import keras
import numpy as np

from swav_keras.validation import check_float, check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class AssignmentMonitor(keras.callbacks.Callback):
    """Logs prototype usage each epoch and warns when SwAV training is not learning.

    Three failure modes of SwAV are easy to miss while training:

    - the loss sits at `ln(K)`: predictions stay uniform over the K prototypes, nothing is
      learned (learning rate too low or too high, temperature too high, prototypes frozen for
      too long);
    - assignments collapse onto a few prototypes: most prototypes never win a sample, so the
      clustering carries little information (epsilon too small for the batch, no queue with
      small batches, learning rate too high early on);
    - the epoch loss rises: most often a feature queue that started too early (the original's
      advice: start it later or shorten it; `docs/TUNING.md`, `queue_length`, has a
      Fashion-MNIST example).

    At the end of each epoch the callback adds to the logs `prototypes_won` (prototypes that
    were the best match of at least one sample during the epoch) and prints a one-line
    summary; it warns naming the likely fixes. With `reinitialize_unused=True` it also moves
    each prototype that won nothing during the epoch next to a randomly chosen used one (plus
    noise, renormalised), the usual remedy for assignment imbalance.

    It reads the model's `prototype_counts` and `prototypes.kernel` (a `swav_keras.SwAV`) and
    the `loss`, `prototypes_used` and `assignment_entropy` logs. With several prototype heads
    the counts, and so the summary, warnings and re-initialisation, are the first head's; the
    plateau is the mean of the heads' `ln(K)` (the loss is their mean). The counts restart at
    each epoch's end; list the callback before a `BackupAndRestore` so that the backup made at
    an epoch's end holds the prototypes as re-initialised and the counts restarted.

    Args:
        collapse_fraction: float in (0, 1]; warn when fewer than this fraction of the
            prototypes won a sample during the epoch. Defaults to `0.1`.
        plateau_tolerance: float >= 0; warn when the epoch loss is within this relative
            distance of `ln(K)`. Defaults to `0.01`.
        rise_tolerance: float >= 0; warn when the epoch loss exceeds the previous epoch's
            by more than this fraction of it. Defaults to `0.05`.
        reinitialize_unused: bool, re-initialise the prototypes that won nothing.
            Defaults to `False`.
        noise: float >= 0, scale of the noise added to a revived prototype.
            Defaults to `0.05`.
        seed: int >= 0, seed of the re-initialisation (with the epoch's index, so a resumed run
            draws the same). Defaults to `0`.
        verbose: 0 or 1, print the per-epoch summary. Defaults to `1`.

    Example:

    ```python
    from swav_keras.callbacks import AssignmentMonitor

    model.fit(dataset, epochs=100, callbacks=[AssignmentMonitor(reinitialize_unused=True)])
    ```
    """

    def __init__(
        self,
        collapse_fraction=0.1,
        plateau_tolerance=0.01,
        rise_tolerance=0.05,
        reinitialize_unused=False,
        noise=0.05,
        seed=0,
        verbose=1,
    ):
        super().__init__()
        self.collapse_fraction = check_float(
            "collapse_fraction", collapse_fraction, positive=True, maximum=1.0
        )
        self.plateau_tolerance = check_float("plateau_tolerance", plateau_tolerance, minimum=0.0)
        self.rise_tolerance = check_float("rise_tolerance", rise_tolerance, minimum=0.0)
        if not isinstance(reinitialize_unused, bool):
            raise TypeError(
                "`reinitialize_unused` must be a bool; "
                f"received reinitialize_unused={reinitialize_unused!r}."
            )
        self.reinitialize_unused = reinitialize_unused
        self.noise = check_float("noise", noise, minimum=0.0)
        self.seed = check_int("seed", seed, minimum=0)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.warnings = []  # (epoch, message) of every warning given, for programs and tests
        self._previous_loss = None

    def on_train_begin(self, logs=None):
        if getattr(self.model, "prototype_counts", None) is None:
            raise ValueError(
                "AssignmentMonitor needs a swav_keras.SwAV model (with `prototype_counts`); "
                f"received a {type(self.model).__name__}."
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model
        counts = keras.ops.convert_to_numpy(model.prototype_counts)
        num_prototypes = counts.shape[0]
        won = int(np.sum(counts > 0))
        logs["prototypes_won"] = won
        loss = None if logs.get("loss") is None else float(logs["loss"])
        summary = f"epoch {epoch + 1}: {won}/{num_prototypes} prototypes won samples"
        if "assignment_entropy" in logs:
            summary += (
                f", mean-assignment entropy {float(logs['assignment_entropy']):.2f} "
                f"(max ln K = {math.log(num_prototypes):.2f})"
            )
        if self.verbose:
            print(summary)

        if loss is not None and math.isfinite(loss):
            sizes = getattr(model, "num_prototypes", num_prototypes)
            sizes = sizes if isinstance(sizes, (tuple, list)) else (num_prototypes,)
            uniform = sum(math.log(k) for k in sizes) / len(sizes)
            level = "ln(K)" if len(sizes) == 1 else "ln(K) averaged over the heads"
            if abs(loss - uniform) <= self.plateau_tolerance * uniform:
                self._warn(
                    epoch,
                    f"the loss {loss:.4f} sits at {level} = {uniform:.4f}: predictions are "
                    "uniform over the prototypes and nothing is being learned. Try another "
                    "learning rate (with warmup), a lower temperature, or fewer "
                    "freeze_prototypes_steps.",
                )
            previous, self._previous_loss = self._previous_loss, loss
            if previous is not None and loss > previous * (1.0 + self.rise_tolerance):
                self._warn(
                    epoch,
                    f"the epoch loss rose from {previous:.4f} to {loss:.4f}. If a "
                    "feature queue started this epoch, start it later (queue_start_epoch) or "
                    "shorten it (queue_length); otherwise lower the learning rate or lengthen "
                    "the warmup.",
                )
        if won < self.collapse_fraction * num_prototypes:
            self._warn(
                epoch,
                f"assignments collapsed: only {won} of {num_prototypes} prototypes won a sample "
                "this epoch. Try a larger epsilon, a feature queue (queue_length) for small "
                "batches, a lower learning rate or longer warmup, fewer prototypes, or "
                "AssignmentMonitor(reinitialize_unused=True).",
            )
        if self.reinitialize_unused and 0 < won < num_prototypes:
            self._reinitialize(counts, epoch)
        # Reset here, not when an epoch begins: the counts are model state, saved with a
        # mid-epoch backup, and a run resumed inside an epoch goes on counting from them.
        model.prototype_counts.assign(np.zeros(counts.shape, "float32"))

    def _reinitialize(self, counts, epoch):
        kernel = keras.ops.convert_to_numpy(self.model.prototypes.kernel).copy()
        used = np.flatnonzero(counts > 0)
        unused = np.flatnonzero(counts == 0)
        rng = np.random.default_rng([self.seed, epoch])  # the same draw after a resume
        sources = rng.choice(used, size=unused.size, replace=True)
        fresh = kernel[:, sources] + self.noise * rng.standard_normal(
            (kernel.shape[0], unused.size)
        )
        kernel[:, unused] = fresh / np.linalg.norm(fresh, axis=0, keepdims=True)
        self.model.prototypes.kernel.assign(kernel.astype("float32"))
        if self.verbose:
            print(
                f"AssignmentMonitor: re-initialised {unused.size} unused prototypes."
            )

    def _warn(self, epoch, message):
        self.warnings.append((epoch, message))
        print(f"WARNING (AssignmentMonitor): {message}")

    def get_config(self):
        return {
            "collapse_fraction": self.collapse_fraction,
            "plateau_tolerance": self.plateau_tolerance,
            "rise_tolerance": self.rise_tolerance,
            "reinitialize_unused": self.reinitialize_unused,
            "noise": self.noise,
            "seed": self.seed,
            "verbose": self.verbose,
        }
