"""SwAV's multi-crop augmentation written once with `keras.ops`, for any backend and device.

The functions here are the math behind `swav_keras.layers.MultiCropAugmentation`: per-image
random resized crops and flips (`random_resized_crops`), and per-image colour jitter, grayscale
and Gaussian blur (`colour_distortion`). They import no backend, so they run inside a model's
compiled training step on CPU, GPU or TPU under TensorFlow, JAX and PyTorch alike, and on
machines without TensorFlow. Randomness comes from a `keras.random.SeedGenerator`.
"""

from swav_keras.augmentation.colour_distortion import colour_distortion
from swav_keras.augmentation.resized_crops import crop_boxes, random_resized_crops

__all__ = ["colour_distortion", "crop_boxes", "random_resized_crops"]
