"""The `keras.ops` the augmentation computes with: the active backend's, or TensorFlow's.

Keras runs its own preprocessing layers inside tf.data under any backend by computing them
with its TensorFlow backend there (`TFDataLayer`). The augmentation does the same, so one
definition serves the model (`MultiCropAugmentation`, any backend, any device) and tf.data
(`swav_keras.data.MultiCrop`). Its modules call `ops.<name>`, `ops.image.<name>` and
`ops.random.uniform` from here: `keras.ops` and `keras.random`, or, inside `tensorflow_ops()`
(which tf.data code enters), the same functions of Keras's TensorFlow backend.
"""

import contextlib
import contextvars

import keras

from swav_keras import keras_internals

_USE_TENSORFLOW = contextvars.ContextVar("swav_keras_tensorflow_ops", default=False)
# Where Keras's TensorFlow backend keeps the functions that `keras.ops` exposes flat.
_FLAT_MODULES = ("core", "numpy", "nn", "math")


@contextlib.contextmanager
def tensorflow_ops():
    """Makes the augmentation compute with TensorFlow, e.g. inside a `tf.data` map."""
    token = _USE_TENSORFLOW.set(True)
    try:
        yield
    finally:
        _USE_TENSORFLOW.reset(token)


def gathers_chosen_images():
    """Whether a per-image choice may compute only the chosen images (dynamic shapes).

    Inside `tensorflow_ops()` (tf.data: TensorFlow graphs without XLA) it may, and skips the
    work of the images not chosen; elsewhere a choice is a select (`ops.where`) over the whole
    batch, so shapes stay static for XLA and `jit_compile`.
    """
    return _USE_TENSORFLOW.get()


class _Ops:
    """`keras.ops` with `image` and `random`, resolved at each use (tracing time in a graph)."""

    def __getattr__(self, name):
        if not _USE_TENSORFLOW.get() or keras.backend.backend() == "tensorflow":
            return keras.random if name == "random" else getattr(keras.ops, name)
        tensorflow = keras_internals.tensorflow_backend()
        if name in ("image", "random"):
            return getattr(tensorflow, name)
        for module in _FLAT_MODULES:
            if hasattr(getattr(tensorflow, module), name):
                return getattr(getattr(tensorflow, module), name)
        raise AttributeError(f"Keras's TensorFlow backend has no op {name!r}.")


ops = _Ops()


def uniform(shape, seed_generator, minval=0.0, maxval=1.0):
    """float32 uniform draws in `[minval, maxval)`, whatever `keras.config.floatx()` says."""
    return ops.random.uniform(shape, minval, maxval, dtype="float32", seed=seed_generator)
