"""swav-keras: SwAV (Caron et al., 2020) written once in Keras 3.

Train with `model.fit` on TensorFlow, JAX or PyTorch: pick the backend with `KERAS_BACKEND`.
Every public subpackage is an attribute of `swav_keras` (`swav_keras.optimizers.LARS`, ...);
those not needed by the model itself load on first use, so `import swav_keras` stays quick
and imports no TensorFlow under JAX or PyTorch.
"""

import importlib

from swav_keras import callbacks, layers
from swav_keras.determinism import enable_determinism
from swav_keras.sinkhorn import sinkhorn
from swav_keras.swav_loss import assignment_codes, swapped_prediction, swav_loss
from swav_keras.swav_model import SwAV

__version__ = "0.1.0"

# Loaded on first attribute access (PEP 562): `data` and `evaluation` may pull in tf.data,
# `visualization` matplotlib.
_LAZY_SUBPACKAGES = (
    "augmentation",
    "backbones",
    "backends",
    "data",
    "evaluation",
    "optimizers",
    "visualization",
)

__all__ = [
    "SwAV",
    "assignment_codes",
    "callbacks",
    "enable_determinism",
    "layers",
    "sinkhorn",
    "swapped_prediction",
    "swav_loss",
    *_LAZY_SUBPACKAGES,
]


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"swav_keras.{name}")
    raise AttributeError(f"module 'swav_keras' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
