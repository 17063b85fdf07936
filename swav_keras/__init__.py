"""swav-keras: SwAV (Caron et al., 2020) written once in Keras 3.

Train with `model.fit` on TensorFlow, JAX or PyTorch: pick the backend with `KERAS_BACKEND`.
"""

from swav_keras import callbacks, layers
from swav_keras.sinkhorn import sinkhorn
from swav_keras.swav_loss import assignment_codes, swapped_prediction, swav_loss
from swav_keras.swav_model import SwAV

__version__ = "0.1.0"

__all__ = [
    "SwAV",
    "assignment_codes",
    "callbacks",
    "layers",
    "sinkhorn",
    "swapped_prediction",
    "swav_loss",
]
