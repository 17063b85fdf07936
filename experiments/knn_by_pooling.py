r"""Which pooling of an encoder's last map gives the best kNN: a global average, four corner
windows, or a grid of disjoint cells.

Workload: each given `.keras` encoder (from `recipes/pretrain.py`, or `random:W`) cut before
its final pooling layer, so that its last feature map is computed once for the full
Fashion-MNIST split (60k train / 10k test), then pooled as each of `--poolings`: `avg` (the
global average), `corners` (`CornerAveragePooling2D`: the original's `AvgPool2d(6, stride=1)`
on a 7x7 map) or `gridG` (`GridAveragePooling2D(G)`: G x G disjoint cells; on a 7x7 map
`grid7` is the map itself, flattened). Each is scored by the main job's kNN (k=20 cosine,
weighted vote, T=0.07) twice: on a held-out part of the training split (its last
`--holdout` images as queries, the rest as memory), where a pooling may be chosen without
looking at the test split, and on the test split (all 60k as memory). Only an encoder's own
pooling is the standard protocol for that encoder; the other rows say which pooling to train
with (`--pooling` / `--grid_size` of `recipes/pretrain.py`).

Command (2 CPU cores, TensorFlow: the maps take about a minute per encoder, each pooling one
to four minutes, most for the largest grids):

    python -m experiments.knn_by_pooling --encoders=runs/a/encoder.keras --poolings=avg,grid4

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import platform
import re

import numpy as np
from absl import app, flags

from benchmarks.machine import cpu_name
from recipes.features import ENCODER_SPEC_HELP

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags, defined when it runs (not on import: the tests import this module
    beside other benchmarks that define flags of the same names)."""
    flags.DEFINE_list("encoders", [],
                      f"The encoders to score, comma-separated: each {ENCODER_SPEC_HELP}.")
    flags.DEFINE_list("poolings", ["avg", "corners", "grid2", "grid4"], "Poolings of the last "
                      "map: `avg`, `corners` or `gridG` (G x G disjoint cells).")
    flags.DEFINE_integer("holdout", 10000, "Training images (the last ones) held out as "
                         "queries of the held-out kNN; the rest are its memory.")
    flags.DEFINE_integer("chunk", 2048, "Images per forward pass and per pooling call.")
    flags.DEFINE_string("data_dir", None, "Folder of the Fashion-MNIST files.")

_GRID = re.compile(r"grid([1-9][0-9]*)$")
_POOLINGS = ("GlobalAveragePooling2D", "CornerAveragePooling2D", "GridAveragePooling2D")


def pooling_layer(name):
    """The layer that pools a `[N, H, W, C]` map as `name` says (`avg`, `corners`, `gridG`)."""
    from swav_keras.layers import CornerAveragePooling2D, GridAveragePooling2D

    if name == "avg":
        return GridAveragePooling2D(1)
    if name == "corners":
        return CornerAveragePooling2D()
    match = _GRID.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            "Each pooling must be `avg`, `corners` or `gridG` with G a positive integer; "
            f"received {name!r}."
        )
    return GridAveragePooling2D(int(match.group(1)))


def last_map_model(encoder):
    """The encoder up to its last feature map: the input of its final pooling layer."""
    import keras

    last = encoder.layers[-1] if encoder.layers else None
    if type(last).__name__ not in _POOLINGS:
        what = "no layer" if last is None else f"{type(last).__name__} {last.name!r}"
        raise ValueError(
            f"`encoder` must end in one of {_POOLINGS}, whose input map is pooled here; "
            f"received an encoder whose last layer is {what}."
        )
    return keras.Model(encoder.inputs, last.input, name=f"{encoder.name}_last_map")


def pool(maps, layer, chunk):
    """`layer` applied to `maps` (NumPy `[N, H, W, C]`) `chunk` at a time: NumPy `[N, D]`."""
    import keras

    return np.concatenate([keras.ops.convert_to_numpy(layer(maps[start:start + chunk]))
                           for start in range(0, len(maps), chunk)])


def last_maps(encoder, images, chunk):
    cut = last_map_model(encoder)
    return np.concatenate([
        np.asarray(cut.predict_on_batch(images[start:start + chunk]), dtype="float32")
        for start in range(0, len(images), chunk)])


def main(argv):
    del argv
    if not FLAGS.encoders:
        raise app.UsageError("--encoders: give at least one .keras encoder.")
    layers = {name: pooling_layer(name) for name in FLAGS.poolings}
    import keras

    from recipes import configs
    from recipes.features import load_encoder, load_split
    from swav_keras.evaluation import knn_accuracy

    config = configs.get_config("fashion_mnist")
    *train, info = load_split("fashion_mnist", "train", FLAGS.data_dir)
    test = load_split("fashion_mnist", "test", FLAGS.data_dir)[:2]
    if not 0 < FLAGS.holdout < len(train[1]):
        raise app.UsageError(f"--holdout must be in 1-{len(train[1]) - 1}; received "
                             f"{FLAGS.holdout}.")
    memory = len(train[1]) - FLAGS.holdout
    print(f"Workload: the last map of each encoder pooled as {FLAGS.poolings}; kNN k=20 cosine "
          f"weighted (T=0.07) on Fashion-MNIST: held out ({memory:,} training images as memory, "
          f"the last {FLAGS.holdout:,} as queries) and test (60k / 10k).")
    print(f"Backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{cpu_name()} ({platform.machine()}), Python {platform.python_version()}")
    print("| encoder | its own pooling | pooling | features | held-out kNN | test kNN |")
    print("|---|---|---|---|---|---|")
    for path in FLAGS.encoders:
        encoder = load_encoder(path, info)
        own = encoder.layers[-1].name
        train_maps = last_maps(encoder, train[0], FLAGS.chunk)
        test_maps = last_maps(encoder, test[0], FLAGS.chunk)
        for name, layer in layers.items():
            features = pool(train_maps, layer, FLAGS.chunk)
            held_out = knn_accuracy(features[:memory], train[1][:memory], features[memory:],
                                    train[1][memory:], k=config.knn_k,
                                    temperature=config.knn_temperature)
            scored = knn_accuracy(features, train[1], pool(test_maps, layer, FLAGS.chunk),
                                  test[1], k=config.knn_k, temperature=config.knn_temperature)
            print(f"| {path} | {own} | {name} | {features.shape[1]} | "
                  f"{held_out['weighted']:.2%} | {scored['weighted']:.2%} |", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
