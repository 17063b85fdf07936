"""Keras layers of SwAV, registered for `.keras` saving."""

from swav_keras.layers.feature_queue import FeatureQueue
from swav_keras.layers.l2_normalize import L2Normalize
from swav_keras.layers.projection_head import ProjectionHead
from swav_keras.layers.prototypes import Prototypes, UnitNormalInitializer

__all__ = ["FeatureQueue", "L2Normalize", "ProjectionHead", "Prototypes", "UnitNormalInitializer"]
