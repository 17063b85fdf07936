r"""Which classes an encoder's kNN gets right and wrong, side by side with raw pixels.

Workload: each given representation (`pixels`, a `.keras` encoder from `recipes/pretrain.py`,
or `random:W`) scored as the main job scores it, kNN k=20 cosine with the weighted vote
(T=0.07) on the full Fashion-MNIST split (60k train / 10k test), then broken down: the top-1
of every class (the fraction of its 1,000 test images given their own label), and the test
images that two classes trade most (true class -> predicted class, counts). One table row per
class, one column per representation, so where an encoder beats raw pixels and where it loses
to them reads across a row. A diagnostic of the accuracy study in `benchmarks/RESULTS.md`,
not a figure of the standard protocol (that is the overall top-1, printed too).

Command (2 CPU cores, TensorFlow: about a minute per encoder):

    python -m experiments.knn_per_class --representations=pixels,runs/a/encoder.keras

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import os
import platform

import numpy as np
from absl import app, flags

from benchmarks.machine import cpu_name
from recipes.features import ENCODER_SPEC_HELP

FLAGS = flags.FLAGS
flags.DEFINE_list("representations", ["pixels"],
                  f"What to score, comma-separated: `pixels`, or {ENCODER_SPEC_HELP}.")
flags.DEFINE_integer("pairs", 8, "How many of the most traded (true, predicted) class pairs "
                     "to list per representation.")
flags.DEFINE_string("data_dir", None, "Folder of the Fashion-MNIST files.")


def confusion_matrix(labels, predictions, num_classes):
    """`[num_classes, num_classes]` counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            "`labels` and `predictions` must be 1-D arrays of one length; received shapes "
            f"{labels.shape} and {predictions.shape}."
        )
    for name, ids in (("labels", labels), ("predictions", predictions)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(
                f"`{name}` must hold class ids in [0, {num_classes}); received ids from "
                f"{ids.min()} to {ids.max()}."
            )
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion):
    """Top-1 of each class (its row's diagonal share); NaN for a class with no test images."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def most_traded(confusion, count):
    """The `count` largest off-diagonal cells: `[(true, predicted, images), ...]`, most first;
    ties go to the smaller (true, predicted) pair, and empty cells are left out."""
    confusion = np.asarray(confusion)
    cells = [(-int(confusion[t, p]), t, p) for t in range(len(confusion))
             for p in range(len(confusion)) if t != p and confusion[t, p] > 0]
    return [(t, p, -negative) for negative, t, p in sorted(cells)[:count]]


def column_name(spec):
    """`pixels`, `random:W`, or a `.keras` file's name (its folder's for `encoder.keras`)."""
    if spec.endswith("encoder.keras") and os.path.dirname(spec):
        return os.path.basename(os.path.dirname(os.path.normpath(spec)))
    return os.path.basename(spec)


def main(argv):
    del argv
    import keras

    from recipes import configs
    from recipes.features import compute_features, load_encoder, load_split
    from swav_keras.evaluation import knn_classify

    config = configs.get_config("fashion_mnist")
    print(f"Workload: kNN k={config.knn_k} cosine, weighted vote (T={config.knn_temperature}), "
          "per class, on Fashion-MNIST 60k/10k.")
    print(f"Backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"{cpu_name()} ({platform.machine()}), Python {platform.python_version()}")
    train_images, train_labels, info = load_split("fashion_mnist", "train", FLAGS.data_dir)
    test_images, test_labels, _ = load_split("fashion_mnist", "test", FLAGS.data_dir)
    num_classes = len(info.class_names)
    confusions = {}
    for spec in FLAGS.representations:
        representation = spec if spec == "pixels" else load_encoder(spec, info)
        train, test = compute_features(representation, train_images, test_images, verbose=0)
        predicted = knn_classify(train, train_labels, test, k=config.knn_k,
                                 temperature=config.knn_temperature)["weighted"]
        confusions[spec] = confusion_matrix(test_labels, predicted, num_classes)
    names = list(confusions)
    print("| class | " + " | ".join(column_name(s) for s in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    accuracies = {spec: per_class_accuracy(c) for spec, c in confusions.items()}
    for label, class_name in enumerate(info.class_names):
        print(f"| {class_name} | " + " | ".join(f"{accuracies[s][label]:.1%}" for s in names)
              + " |")
    print("| all | " + " | ".join(
        f"{np.trace(c) / c.sum():.2%}" for c in confusions.values()) + " |")
    for spec, confusion in confusions.items():
        traded = ", ".join(f"{info.class_names[t]} -> {info.class_names[p]} {n}"
                           for t, p, n in most_traded(confusion, FLAGS.pairs))
        print(f"{column_name(spec)}: most traded (true -> predicted, test images): {traded}")


if __name__ == "__main__":
    app.run(main)
