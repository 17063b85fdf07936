"""Test support: `recipes.pretrain` from its flags, SIGKILLed at a chosen point of the run.

`--kill=replace:K` kills the process just before its K-th `os.replace` (the step that puts a
written file in place: each backup's weights and position, its previous copy, config.json,
encoder.keras, the training log); `--kill=time:S` kills it S seconds after its first training
step began, wherever it then is (a step, a save, a callback). No kill: `--kill=`.
"""

import functools
import os
import signal
import threading

import keras
from absl import app, flags

from recipes import pretrain

flags.DEFINE_string("kill", "", "`replace:K` or `time:S`; empty: run to the end.")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


class _KillAfter(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.timer = seconds, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.timer is None:
            self.timer = threading.Timer(self.seconds, _die)
            self.timer.daemon = True
            self.timer.start()


def main(argv):
    kind, _, at = flags.FLAGS.kill.partition(":")
    if kind == "replace":
        replace, calls = os.replace, [0]

        def counted_replace(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(at):
                _die()
            return replace(*args, **kwargs)

        os.replace = counted_replace
    elif kind == "time":
        pretrain.pretrain = functools.partial(
            pretrain.pretrain, extra_callbacks=[_KillAfter(float(at))])
    pretrain.main(argv)


if __name__ == "__main__":
    pretrain.define_flags()
    app.run(main)
