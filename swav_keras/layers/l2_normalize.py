"""L2 normalisation of the last axis, computed in float32."""

import keras
from keras import ops

from swav_keras.validation import check_float, check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class L2Normalize(keras.layers.Layer):
    """Scales each vector to unit L2 norm along `axis` (PyTorch's `F.normalize`).

    SwAV compares embeddings and prototypes by cosine similarity: both are normalised so that
    their dot products lie in [-1, 1]. Returns the layer's compute dtype.

    Args:
        axis: int, the axis to normalise. Defaults to `-1`.
        epsilon: float, lower bound on the norm, so that a zero vector stays zero.
            Defaults to `1e-12`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import L2Normalize
    >>> y = L2Normalize()(np.array([[3.0, 4.0]], "float32"))
    >>> np.allclose(np.asarray(y), [[0.6, 0.8]])
    True
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = check_int("axis", axis)
        self.epsilon = check_float("epsilon", epsilon, positive=True)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")  # a float16 sum of squares loses precision
        norm = ops.sqrt(ops.sum(ops.square(x), axis=self.axis, keepdims=True))
        return ops.cast(x / ops.maximum(norm, self.epsilon), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config
