"""SwAV's input pipeline: multi-crop augmentation in tf.data, and image sources.

The pipeline is tf.data on every Keras backend (`fit` takes a `tf.data.Dataset` under
TensorFlow, JAX and PyTorch). Images stay in raw pixel scale (0..255) end to end: mean/std
normalisation belongs in the encoder, with the statistics `load_images` reports, so the saved
encoder takes raw pixels. Nothing is read or downloaded at import time.
"""

from swav_keras.data.augment import sample_crop_boxes
from swav_keras.data.fashion_mnist import load_fashion_mnist
from swav_keras.data.multicrop import MultiCrop, multicrop_dataset
from swav_keras.data.sources import ImageSourceInfo, load_images

__all__ = [
    "ImageSourceInfo",
    "MultiCrop",
    "load_fashion_mnist",
    "load_images",
    "multicrop_dataset",
    "sample_crop_boxes",
]
