"""Throughput of the multi-crop input pipeline on the reference workload.

Measures images per second delivered by `multicrop_dataset` on Fashion-MNIST's 60,000 training
images with the crops of /work/shared/WORKLOAD.md: 2 x 28x28 (area scale 0.3..1.0) + 4 x 14x14
(0.08..0.3), flips, brightness and contrast jitter 0.4 with probability 0.8, no grayscale, no
blur, batches of 256. The dataset is iterated for `--warmup` batches, then timed over
`--batches` batches, `--repeats` times; the median is reported. A training step of the reference
model reaches at most ~440 images/s on 2 cores, so the pipeline should stay well above that.
`--rgb_size=S` times the colour work the reference skips (saturation, hue, grayscale, blur) on
random S x S RGB images, with crops of 2S/3 and S/3.

Usage:

    KERAS_BACKEND=jax python benchmarks/multicrop_throughput.py --batches=200
    python benchmarks/multicrop_throughput.py --threads=1  # TensorFlow on one thread
    python benchmarks/multicrop_throughput.py --rgb_size=96 --batches=20  # RGB, every colour op
"""

import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from swav_keras.data import MultiCrop, multicrop_dataset
from swav_keras.data.fashion_mnist import load_fashion_mnist

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per batch.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed batches per repeat.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed batches before the first repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
_THREADS = flags.DEFINE_integer(
    "threads", 0, "Threads of TensorFlow's ops and of tf.data (0: TensorFlow's defaults)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the shuffle and of the crops.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the Fashion-MNIST idx files.")
_RGB_SIZE = flags.DEFINE_integer(
    "rgb_size", 0, "Side of 4,096 random RGB images given the paper's whole colour pipeline "
    "(0: Fashion-MNIST with the reference crops)."
)


def reference_multicrop(seed):
    """The multi-crop of the reference CPU workload (WORKLOAD.md)."""
    return MultiCrop(
        num_crops=(2, 4),
        crop_sizes=(28, 14),
        min_scales=(0.3, 0.08),
        max_scales=(1.0, 0.3),
        brightness=0.4,
        contrast=0.4,
        saturation=0.0,
        hue=0.0,
        jitter_probability=0.8,
        grayscale_probability=0.0,
        blur_probability=0.0,
        flip=True,
        seed=seed,
    )


def rgb_workload(size, seed):
    """Random RGB images and the paper's multi-crop (jitter, hue, grayscale, blur), scaled."""
    images = np.random.default_rng(seed).integers(0, 256, (4096, size, size, 3), "uint8")
    crops = MultiCrop(num_crops=(2, 6), crop_sizes=(size * 2 // 3, size // 3), seed=seed)
    return images, crops


def main(argv):
    del argv
    if _THREADS.value:  # before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    if _RGB_SIZE.value:
        images, multicrop = rgb_workload(_RGB_SIZE.value, _SEED.value)
        source = f"random RGB {_RGB_SIZE.value}x{_RGB_SIZE.value}, the whole colour pipeline"
    else:
        images, _ = load_fashion_mnist("train", _DATA_DIR.value)
        multicrop = reference_multicrop(_SEED.value)
        source = "Fashion-MNIST train, the reference crops"
    dataset = multicrop_dataset(images, multicrop, _BATCH_SIZE.value, repeat=True)
    if _THREADS.value:
        options = tf.data.Options()
        options.threading.private_threadpool_size = _THREADS.value
        dataset = dataset.with_options(options)
    iterator = iter(dataset)
    for _ in range(_WARMUP.value):
        next(iterator)
    rates = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        for _ in range(_BATCHES.value):
            element = next(iterator)
        element[0][-1].numpy()
        rates.append(_BATCHES.value * _BATCH_SIZE.value / (time.perf_counter() - start))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"workload: {source} ({len(images)} images), {multicrop.num_views} crops "
          f"{multicrop.num_crops} x {multicrop.crop_sizes}, batch {_BATCH_SIZE.value}, "
          f"{_BATCHES.value} batches x {_REPEATS.value} after {_WARMUP.value} warm-up")
    print(f"backend: {keras.backend.backend()} (the pipeline is tf.data on every backend)")
    print(f"versions: python {platform.python_version()}, keras {keras.__version__}, "
          f"tensorflow {tf.__version__}, numpy {np.__version__}")
    print(f"machine: {platform.machine()}, {cores} usable cores of {os.cpu_count()}, "
          f"TensorFlow threads: {_THREADS.value or 'default'}")
    print("images/s per repeat: " + ", ".join(f"{r:,.0f}" for r in rates))
    print(f"images/s (median): {statistics.median(rates):,.0f}")


if __name__ == "__main__":
    app.run(main)
