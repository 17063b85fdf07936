"""Stops training at the first step whose loss or input is NaN or Inf, naming that step."""

import math

import keras


@keras.saving.register_keras_serializable(package="swav_keras")
class TerminateOnNonFinite(keras.callbacks.Callback):
    """Raises a `ValueError` as soon as a training step's loss is NaN or Inf.

    Keras's `TerminateOnNaN` stops quietly (or with a `RuntimeError` naming the batch only).
    This callback fails fast with the step number (counted from 1 over the whole training),
    and, with a `SwAV` model, says whether the step's input crops held NaN or Inf (such a step
    changes nothing) or training itself diverged. It raises before the epoch's checkpoint
    is written, so what was saved before stays intact. `SwAV.fit` adds one automatically.

    Example:

    ```python
    from swav_keras.callbacks import TerminateOnNonFinite

    model.fit(dataset, callbacks=[TerminateOnNonFinite()])
    ```
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            return
        model = self.model
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()  # JAX keeps the state off the model during an epoch.
        where = f"epoch {self._epoch + 1}, batch {batch + 1}"
        bad_step = getattr(model, "non_finite_input_step", None)
        if bad_step is not None and int(keras.ops.convert_to_numpy(bad_step.value)) >= 0:
            step = int(keras.ops.convert_to_numpy(bad_step.value)) + 1
            raise ValueError(
                f"The input crops of training step {step} ({where}) hold NaN or Inf values. "
                "That step changed nothing and training stopped; check the dataset (decoding, "
                "normalisation, augmentation) for non-finite values."
            )
        step = getattr(model, "step", None)
        step = int(keras.ops.convert_to_numpy(step.value)) if step is not None else batch + 1
        raise ValueError(
            f"The loss became {loss} at training step {step} ({where}): training diverged. "
            "Lower the learning rate, use warmup, or check mixed precision settings."
        )

    def get_config(self):
        return {}
