"""Finds the Python examples of the README and of docstrings, and runs them with a short `fit`.

An example runs as a user pastes it, except that `keras.Model.fit` is cut to one epoch of two
steps (`short_fit`): the examples show how training is called, the tests check that the call
works, not what ten epochs learn.
"""

import re

_FENCED = re.compile(r"^[ \t]*```python[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)

# Prepended to the README's examples in a fresh interpreter: the same cut as `short_fit`.
SHORT_FIT_PREAMBLE = """\
import keras as _keras

_keras_fit = _keras.Model.fit


def _short_fit(self, x=None, *args, **kwargs):
    kwargs.update(epochs=1, steps_per_epoch=2)
    return _keras_fit(self, x, *args, **kwargs)


_keras.Model.fit = _short_fit
"""


def python_blocks(text):
    """The ```python blocks of a Markdown text or docstring, dedented, in order."""
    blocks = []
    for match in _FENCED.finditer(text):
        lines = match.group(1).splitlines()
        indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()),
                     default=0)
        blocks.append("\n".join(line[indent:] for line in lines) + "\n")
    return blocks


def short_fit(monkeypatch):
    """Cuts `keras.Model.fit` (and so `SwAV.fit`) to one epoch of two steps in this test."""
    import keras

    keras_fit = keras.Model.fit

    def fit(self, x=None, *args, **kwargs):
        kwargs.update(epochs=1, steps_per_epoch=2)
        return keras_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)


def undo_determinism():
    """Switches off what `swav_keras.enable_determinism` switched on in this process, so that
    the tests after an example run as before (TensorFlow's op determinism refuses unseeded
    random ops). One inter-op thread, where it took, stays."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config  # no public switch-off

        config.disable_op_determinism()
    if keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(False)
