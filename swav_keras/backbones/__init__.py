"""Image encoders for SwAV: functional Keras models from images to pooled features."""

from swav_keras.backbones.resnet50 import ResNet50
from swav_keras.backbones.small_resnet import SmallResNet
from swav_keras.backbones.vision_transformer import VisionTransformer

__all__ = ["ResNet50", "SmallResNet", "VisionTransformer"]
