"""Test support: a callback that stops `fit` mid-run, as a crash or a pre-emption would."""

import keras


class StepInterrupt(keras.callbacks.Callback):
    """Counts the steps of a run; raises `KeyboardInterrupt` after `after_steps` (never if -1)."""

    def __init__(self, after_steps=-1):
        super().__init__()
        self.after_steps, self.seen = after_steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after_steps:
            raise KeyboardInterrupt
