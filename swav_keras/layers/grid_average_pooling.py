"""Average pooling of a feature map over a grid of disjoint cells."""

import keras
from keras import ops

from swav_keras.validation import check_feature_map_shape, check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class GridAveragePooling2D(keras.layers.Layer):
    """Averages a feature map over `grid_size x grid_size` disjoint cells and flattens them.

    A global average keeps what the map holds and throws away where: on centred, aligned
    images such as Fashion-MNIST's, where is a strong cue (a sleeve is at the sides, a collar
    at the top). This layer keeps a coarse version of it: the map is cut into `grid_size` bands
    of near-equal height and `grid_size` of near-equal width, every position in exactly one
    cell (row `h` of a map of height `H` falls in band `floor(h * grid_size / H)`, and the same
    for columns; on a 7x7 map a grid of 3 cuts rows and columns 3 + 2 + 2), and each cell is
    averaged. `grid_size=1` is the global average. Unlike `keras.layers.AdaptiveAveragePooling2D`
    (PyTorch's `AdaptiveAvgPool2d`), whose cells overlap when the size does not divide the map,
    and `CornerAveragePooling2D` (the original's `AvgPool2d(6, stride=1)`: four windows that
    share most of the map), every position counts once, so the cells differ as much as the
    map does. `SmallResNet(pooling="grid", grid_size=G)` ends the encoder in it.

    Input `[B, H, W, C]` (channels last, H and W at least `grid_size`); output float32
    `[B, grid_size * grid_size * C]`, the cells row by row (each `C` values). Computed in
    float32 whatever the input dtype.

    Args:
        grid_size: positive int, cells along each side. Defaults to `2`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...).

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from swav_keras.layers import GridAveragePooling2D
    >>> maps = np.arange(3 * 3, dtype="float32").reshape(1, 3, 3, 1)
    >>> keras.ops.convert_to_numpy(GridAveragePooling2D(2)(maps))[0]
    array([2. , 3.5, 6.5, 8. ], dtype=float32)

    Reference:
        Lazebnik et al., "Beyond Bags of Features: Spatial Pyramid Matching for Recognizing
        Natural Scene Categories", CVPR 2006 (pooling over a grid of cells).
    """

    def __init__(self, grid_size=2, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = check_int("grid_size", grid_size, minimum=1)

    def build(self, input_shape):
        self._check_shape(input_shape)

    def call(self, inputs):
        # Again here: a model built for any size (`input_shape=(None, None, C)`) learns the
        # map's size only when it is called, and an empty cell would average to NaN.
        self._check_shape(inputs.shape)
        maps = ops.cast(inputs, "float32")
        rows = self._cell_averages(inputs.shape[1] or ops.shape(inputs)[1])
        cols = self._cell_averages(inputs.shape[2] or ops.shape(inputs)[2])
        pooled = ops.einsum("ih,bhwc->biwc", rows, maps)
        pooled = ops.einsum("jw,biwc->bijc", cols, pooled)
        channels = inputs.shape[-1] or ops.shape(inputs)[-1]
        return ops.reshape(pooled, (-1, self.grid_size * self.grid_size * channels))

    def _check_shape(self, shape):
        check_feature_map_shape(f"GridAveragePooling2D(grid_size={self.grid_size})", shape,
                                self.grid_size, "one row and column per cell at least")

    def _cell_averages(self, size):
        """`[grid_size, size]`: row `i` averages the positions of cell `i`."""
        cells = (ops.arange(size, dtype="int32") * self.grid_size) // size
        members = ops.transpose(ops.one_hot(cells, self.grid_size, dtype="float32"))
        return members / ops.sum(members, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        features = None if channels is None else self.grid_size * self.grid_size * channels
        return (input_shape[0], features)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}
