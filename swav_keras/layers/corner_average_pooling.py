"""Average pooling of a feature map over its four corner windows: a 2x2 map."""

import keras
from keras import ops

from swav_keras.validation import check_feature_map_shape


@keras.saving.register_keras_serializable(package="swav_keras")
class CornerAveragePooling2D(keras.layers.Layer):
    """Averages a feature map over its four `(H-1) x (W-1)` corner windows: a 2x2 map.

    The pooling of SwAV's `eval_linear.py --global_pooling false` (`AvgPool2d(6, stride=1)`
    on ResNet-50's 7x7 map, after Goyal et al. 2019), for any map of at least 2x2: windows one
    row and one column smaller than the map, so exactly four. The features keep where things
    are at four times the channels, which a linear classifier can use and a global average
    throws away. Used by `swav_keras.evaluation.corner_pooled_encoder` and by
    `SmallResNet(pooling="corners")`.

    Input `[B, H, W, C]` (channels last, H and W at least 2); output float32 `[B, 4 * C]`,
    the 2x2 map flattened row by row (top-left, top-right, bottom-left, bottom-right cells,
    each `C` values). Computed in float32 whatever the input dtype.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from swav_keras.layers import CornerAveragePooling2D
    >>> maps = np.arange(2 * 3 * 3 * 1, dtype="float32").reshape(2, 3, 3, 1)
    >>> keras.ops.convert_to_numpy(CornerAveragePooling2D()(maps))[0]
    array([2., 3., 5., 6.], dtype=float32)

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020 (code: `eval_linear.py`, `RegLog`).
        Goyal et al., "Scaling and Benchmarking Self-Supervised Visual Representation
        Learning", ICCV 2019.
    """

    def build(self, input_shape):
        check_feature_map_shape("CornerAveragePooling2D", input_shape, 2,
                                "four windows one smaller than the map")

    def call(self, inputs):
        maps = ops.cast(inputs, "float32")
        corners = (maps[:, :-1, :-1], maps[:, :-1, 1:], maps[:, 1:, :-1], maps[:, 1:, 1:])
        pooled = ops.stack([ops.mean(window, axis=(1, 2)) for window in corners], axis=1)
        return ops.reshape(pooled, (-1, 4 * ops.shape(inputs)[-1]))

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else 4 * channels)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")
