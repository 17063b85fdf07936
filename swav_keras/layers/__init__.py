"""Keras layers of SwAV, registered for `.keras` saving."""

from swav_keras.layers.corner_average_pooling import CornerAveragePooling2D
from swav_keras.layers.feature_queue import FeatureQueue
from swav_keras.layers.grid_average_pooling import GridAveragePooling2D
from swav_keras.layers.im2col_conv2d import (
    CONV_IMPLEMENTATIONS,
    Im2colConv2D,
    im2col_conv,
    to_conv2d,
    to_im2col_conv2d,
    with_conv_implementation,
)
from swav_keras.layers.l2_normalize import L2Normalize
from swav_keras.layers.multi_crop_augmentation import MultiCropAugmentation
from swav_keras.layers.native_conversion import (
    LAYER_IMPLEMENTATIONS,
    to_keras_layers,
    to_native_layers,
    with_layer_implementation,
)
from swav_keras.layers.native_layers import (
    NativeBatchNormalization,
    NativeConv2D,
    NativeMaxPooling2D,
)
from swav_keras.layers.position_embedding import (
    ClassTokenPooling,
    InterpolatedPositionEmbedding,
)
from swav_keras.layers.projection_head import ProjectionHead
from swav_keras.layers.prototypes import Prototypes, UnitNormalInitializer
from swav_keras.layers.sync_batch_normalization import (
    SyncBatchNormalization,
    synchronize_batch_normalization,
    to_batch_normalization,
    to_sync_batch_normalization,
)

__all__ = [
    "CONV_IMPLEMENTATIONS",
    "ClassTokenPooling",
    "CornerAveragePooling2D",
    "FeatureQueue",
    "GridAveragePooling2D",
    "Im2colConv2D",
    "InterpolatedPositionEmbedding",
    "L2Normalize",
    "LAYER_IMPLEMENTATIONS",
    "MultiCropAugmentation",
    "NativeBatchNormalization",
    "NativeConv2D",
    "NativeMaxPooling2D",
    "ProjectionHead",
    "Prototypes",
    "SyncBatchNormalization",
    "UnitNormalInitializer",
    "im2col_conv",
    "synchronize_batch_normalization",
    "to_conv2d",
    "to_keras_layers",
    "to_native_layers",
    "to_im2col_conv2d",
    "to_batch_normalization",
    "to_sync_batch_normalization",
    "with_conv_implementation",
    "with_layer_implementation",
]
