"""SwAV's input pipeline: multi-crop augmentation in tf.data, and image sources.

The pipeline is tf.data on every Keras backend (`fit` takes a `tf.data.Dataset` under
TensorFlow, JAX and PyTorch). Images stay in raw pixel scale (0..255) end to end: mean/std
normalisation belongs in the encoder, with the statistics `load_images` reports, so the saved
encoder takes raw pixels. Nothing is read or downloaded at import time.

TensorFlow is imported only when a tf.data part is first used: `load_fashion_mnist`,
`load_arrays` of Fashion-MNIST, image folders (Pillow; `lazy=True` keeps them on disk as an
`ImageFiles`) and arrays, and `ImageBatches` (a `keras.utils.PyDataset`) work on a machine
without it, with `swav_keras.layers.MultiCropAugmentation` doing the crops inside the model.
"""

import importlib

_EXPORTS = {
    "ImageBatches": "swav_keras.data.image_batches",
    "ImageFiles": "swav_keras.data.image_files",
    "ImageSourceInfo": "swav_keras.data.source_info",
    "MultiCrop": "swav_keras.data.multicrop",
    "load_arrays": "swav_keras.data.arrays",
    "load_fashion_mnist": "swav_keras.data.fashion_mnist",
    "load_images": "swav_keras.data.sources",
    "multicrop_dataset": "swav_keras.data.multicrop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Imports an export's module on first use (PEP 562), so TensorFlow loads only if needed."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'swav_keras.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
