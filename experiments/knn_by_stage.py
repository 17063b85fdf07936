r"""Where in the encoder the learned features are: kNN and linear top-1 of every stage.

Workload: each given `.keras` encoder (from `recipes/pretrain.py`, or `random:W` for the
recipe's small ResNet of width W freshly initialised, seed 0) cut after the last block of
each ResNet stage (the layers `conv<S>_block<B>_out`). Each stage's feature maps are pooled
over the whole map (`grid 1`: global average pooling, what the encoder's own output does
after the last stage) or over a `G x G` grid of near-equal cells (`grid G`: `G * G * C`
features that keep where things are), then scored on the full Fashion-MNIST split (60k train /
10k test) as the main job scores the encoder: kNN k=20 cosine, majority and weighted vote
(T=0.07), and a linear probe of `--linear_epochs` (0 skips it). The last stage with grid 1 is
the encoder's output, the figure of the standard protocol; the other rows are diagnostics (the
layer-wise probes of Zhang et al. 2016 and Goyal et al. 2019), not that protocol.

Command (2 CPU cores, TensorFlow: about 2 minutes per encoder for kNN alone, 6 with the
linear probes):

    python -m experiments.knn_by_stage --encoders=runs/a/encoder.keras,random:16

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import platform
import re

import numpy as np
from absl import app, flags

from benchmarks.machine import cpu_name
from recipes.features import ENCODER_SPEC_HELP

FLAGS = flags.FLAGS
flags.DEFINE_list("encoders", [],
                  f"The encoders to score, comma-separated: each {ENCODER_SPEC_HELP}.")
flags.DEFINE_list("grids", ["1", "2"], "Pooling grids: 1 is global average pooling, G pools "
                  "each stage's map to G x G cells.")
flags.DEFINE_integer("linear_epochs", 0, "Epochs of each linear probe (the main job's 30); 0 "
                     "scores kNN only.")
flags.DEFINE_integer("chunk", 2048, "Images per forward pass (the feature maps of a chunk of "
                     "every stage are held at once).")
flags.DEFINE_string("data_dir", None, "Folder of the Fashion-MNIST files.")

_BLOCK_OUTPUT = re.compile(r"conv(\d+)_block(\d+)_out$")


def stage_outputs(encoder):
    """Names of the last block output of each stage, in stage order."""
    last = {}
    for layer in encoder.layers:
        match = _BLOCK_OUTPUT.match(layer.name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if block >= last.get(stage, (0, ""))[0]:
                last[stage] = (block, layer.name)
    if not last:
        raise ValueError(f"{encoder.name} has no `conv<S>_block<B>_out` layers: not a ResNet.")
    return [last[stage][1] for stage in sorted(last)]


def grid_pool(maps, grid):
    """`[N, H, W, C]` maps averaged over `grid x grid` disjoint near-equal cells (the
    encoder's `GridAveragePooling2D`): `[N, grid*grid*C]`."""
    import keras

    from swav_keras.layers import GridAveragePooling2D

    return keras.ops.convert_to_numpy(GridAveragePooling2D(grid)(maps))


def stage_features(encoder, images, grids, chunk):
    """`{(layer, grid): [N, D]}` for every stage output and grid, `chunk` images at a time."""
    import keras

    names = stage_outputs(encoder)
    cut = keras.Model(encoder.inputs, [encoder.get_layer(n).output for n in names])
    parts = {(name, grid): [] for name in names for grid in grids}
    for start in range(0, len(images), chunk):
        maps = cut.predict_on_batch(images[start:start + chunk])
        for name, stage_maps in zip(names, maps):
            stage_maps = keras.ops.convert_to_numpy(stage_maps).astype("float32")
            for grid in grids:
                parts[(name, grid)].append(grid_pool(stage_maps, grid))
    return {key: np.concatenate(value) for key, value in parts.items()}


def main(argv):
    del argv
    if not FLAGS.encoders:
        raise app.UsageError("--encoders: give at least one .keras encoder.")
    grids = [int(g) for g in FLAGS.grids]
    import keras

    from recipes import configs
    from recipes.features import load_encoder, load_split
    from swav_keras.evaluation import knn_accuracy, linear_probe

    probe = f"a {FLAGS.linear_epochs}-epoch linear probe" if FLAGS.linear_epochs else "no probe"
    print(f"Workload: the last block of each stage, pooled to grids {grids}; kNN k=20 cosine "
          f"(T=0.07) and {probe} on Fashion-MNIST 60k/10k.")
    print(f"Backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{cpu_name()} ({platform.machine()}), Python {platform.python_version()}")
    config = configs.get_config("fashion_mnist")
    *train, info = load_split("fashion_mnist", "train", FLAGS.data_dir)
    test = load_split("fashion_mnist", "test", FLAGS.data_dir)[:2]
    print("| encoder | layer | grid | features | kNN majority | kNN weighted | linear top-1 |")
    print("|---|---|---|---|---|---|---|")
    for path in FLAGS.encoders:
        encoder = load_encoder(path, info)
        train_features = stage_features(encoder, train[0], grids, FLAGS.chunk)
        test_features = stage_features(encoder, test[0], grids, FLAGS.chunk)
        for (name, grid), features in train_features.items():
            knn = knn_accuracy(features, train[1], test_features[(name, grid)], test[1],
                               k=config.knn_k, temperature=config.knn_temperature)
            linear = "-"
            if FLAGS.linear_epochs:
                result = linear_probe(features, train[1], test_features[(name, grid)], test[1],
                                      epochs=FLAGS.linear_epochs, verbose=0)
                linear = f"{result['top1']:.2%}"
            print(f"| {path} | {name} | {grid} | {features.shape[1]} | {knn['majority']:.2%} | "
                  f"{knn['weighted']:.2%} | {linear} |", flush=True)


if __name__ == "__main__":
    app.run(main)
