"""Images per second that an image folder streamed from disk delivers, side by side.

With the crops in the model and no TensorFlow, an image folder is served by
`ImageBatches(ImageFiles(...), workers=2)`: Pillow decodes the next batches in two threads
while the step trains. This measures, in one run and interleaved round by round (the
machine's noise then hits every row alike), the images/s of:

- `in memory`: the same images as one NumPy array, through the same `ImageBatches` and
  `predict`: the upper bound of the path;
- `files, N workers`: `ImageBatches(ImageFiles)` through `predict` of a model that only
  averages each image (Keras's threaded enqueuer, as in `fit`), for N = 1 and 2;
- `files, 2 processes`: the same with `use_multiprocessing=True` (Keras forks a pool of 2
  processes at each epoch, and every batch comes back pickled; JAX warns about the fork);
- `tf.data folder`: `keras.utils.image_dataset_from_directory` batches, when TensorFlow is
  installed (what the recipes stream where it is).

For the default folder each is also compared with what a training step consumes: the
reference workload's ceiling (`../shared/WORKLOAD.md`: about 440 images/s on 2 cores; the
fastest measured step reaches 403), so the ratio says how many steps' worth of images the
stream delivers. For another folder compare with your own step's images/s.

Usage (the default folder: the first `--images` Fashion-MNIST training images written as PNG
files, 28x28 grayscale, into a temporary folder):

    KERAS_BACKEND=jax python -m benchmarks.image_files_throughput
    python -m benchmarks.image_files_throughput --folder=~/imagenette2/train --image_size=160
"""

import os
import platform
import statistics
import tempfile
import time

import keras
import numpy as np
from absl import app, flags

from benchmarks.machine import cpu_name
from recipes.inputs import tensorflow_available
from swav_keras.data import ImageBatches, load_arrays

_FOLDER = flags.DEFINE_string(
    "folder", None, "An image folder (class subfolders) to read; default: Fashion-MNIST PNGs.")
_IMAGES = flags.DEFINE_integer("images", 10_000, "How many images the default folder holds.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Resize to this size (square).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per batch.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds of every row; medians reported.")
_STEP_IMAGES_PER_S = 440.0  # the reference workload's ceiling on 2 cores (WORKLOAD.md)


def _write_fashion_mnist_folder(root, count):
    from PIL import Image

    images, labels, info = load_arrays("fashion_mnist", "train", take=count)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, info.class_names[label].replace("/", "-"))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image[..., 0]).save(os.path.join(folder, f"{i:05d}.png"))
    return root


def _predict_rate(model, served):
    start = time.perf_counter()
    out = model.predict(served, verbose=0)
    return len(out) / (time.perf_counter() - start)


def _tf_data_rate(folder, files, batch_size):
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        folder, batch_size=batch_size, image_size=files.shape[1:3], color_mode=files.color_mode,
        shuffle=True, seed=0, verbose=False).prefetch(tf.data.AUTOTUNE)
    start, count = time.perf_counter(), 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.expanduser(_FOLDER.value) if _FOLDER.value else (
            _write_fashion_mnist_folder(scratch, _IMAGES.value))
        files, _, _ = load_arrays(folder, image_size=_IMAGE_SIZE.value, lazy=True)
        array = files[:]
        batch = min(_BATCH_SIZE.value, len(files))
        model = keras.Sequential([keras.Input(files.shape[1:]),
                                  keras.layers.GlobalAveragePooling2D()])
        rows = {
            "in memory": lambda: _predict_rate(model, ImageBatches(array, batch, seed=0)),
            "files, 1 worker": lambda: _predict_rate(model, ImageBatches(files, batch, seed=0)),
            "files, 2 workers": lambda: _predict_rate(
                model, ImageBatches(files, batch, seed=0, workers=2)),
            "files, 2 processes": lambda: _predict_rate(
                model, ImageBatches(files, batch, seed=0, workers=2, use_multiprocessing=True)),
        }
        if tensorflow_available():
            rows["tf.data folder"] = lambda: _tf_data_rate(folder, files, batch)
        _predict_rate(model, ImageBatches(array, batch, seed=0))  # warm-up: compiles predict
        rates = {name: [] for name in rows}
        for _ in range(_ROUNDS.value):
            for name, measure in rows.items():
                rates[name].append(measure())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"workload: {len(files)} images of {files.shape[1:]} ({files.dtype.name}) from "
          f"{_FOLDER.value or 'Fashion-MNIST PNGs'}, batch {batch}, "
          f"{_ROUNDS.value} interleaved rounds, medians")
    print(f"backend: {keras.backend.backend()}")
    print(f"versions: python {platform.python_version()}, keras {keras.__version__}, "
          f"numpy {np.__version__}")
    print(f"machine: {platform.machine()}, {cpu_name()}, {cores} usable cores")
    reference = _FOLDER.value is None and _IMAGE_SIZE.value is None
    print(f"{'path':<20} {'images/s':>10} {'vs in memory':>13}"
          + (f" {'x step ceiling':>15}" if reference else ""))
    best = statistics.median(rates["in memory"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<20} {rate:>10,.0f} {rate / best:>13.2f}"
              + (f" {rate / _STEP_IMAGES_PER_S:>15.1f}" if reference else ""))


if __name__ == "__main__":
    app.run(main)
