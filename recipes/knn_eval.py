r"""kNN evaluation of a frozen encoder (or of raw pixels): k=20, cosine, two votes.

The standard monitor of self-supervised features (Wu et al. 2018; DINO's `eval_knn.py`):
L2-normalised features of the whole training split are the memory bank; each test image takes
the labels of its k most cosine-similar training images, by majority vote and by a vote
weighted by `exp(similarity / T)`. Top-1 accuracy of both.

Command:

    KERAS_BACKEND=jax python -m recipes.knn_eval --encoder=runs/fmnist/encoder.keras
    python -m recipes.knn_eval --encoder=pixels     # the raw-pixel baseline

Figures (full Fashion-MNIST, 60k train / 10k test), on 2 CPU cores: raw pixels 84.07%
majority / 84.59% weighted in about 1 minute; the main job's SwAV encoder (10 epochs) 85.86% /
85.99% (TensorFlow) and 86.19% / 86.32% (JAX); details in `benchmarks/RESULTS.md`. Which
classes an encoder gets wrong, next to raw pixels:
`python -m experiments.knn_per_class --representations=pixels,<encoder.keras>`.
"""

import time

from absl import app, flags

from recipes.features import check_representation, compute_features, load_split

FLAGS = flags.FLAGS


def define_flags():
    """Defines the recipe's flags (called by the program, not at import)."""
    flags.DEFINE_string("encoder", "pixels", "A .keras encoder, or 'pixels' for raw pixels.")
    flags.DEFINE_string("dataset", "fashion_mnist", "Dataset to evaluate on (train, test).")
    flags.DEFINE_string("data_dir", None, "Folder of the data.")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training images.")
    flags.DEFINE_bool(
        "strict_images", False,
        "Make the first bad file of an image folder an error naming it, instead of a warning "
        "and a skip.",
    )
    flags.DEFINE_integer("knn_k", 20, "Neighbours per test image; 10-200 work, 20 is standard.")
    flags.DEFINE_float(
        "knn_temperature", 0.07,
        "Temperature of the weighted vote; lower trusts the nearest neighbours more.",
    )


def knn_eval(representation, dataset="fashion_mnist", data_dir=None, train_examples=None,
             k=20, temperature=0.07, verbose="auto", strict_images=False):
    """Returns `{"majority": top1, "weighted": top1, "seconds": s}`; an image folder's bad
    files are skipped with a warning, or with `strict_images` an error naming the first."""
    from swav_keras.data.image_checks import check_strict_images
    from swav_keras.evaluation import knn_accuracy

    start = time.time()
    representation = check_representation(representation, train_examples)
    check_strict_images(strict_images)
    train_images, train_labels, _ = load_split(dataset, "train", data_dir, train_examples,
                                               strict_images=strict_images)
    test_images, test_labels, _ = load_split(dataset, "test", data_dir,
                                             strict_images=strict_images)
    train, test = compute_features(representation, train_images, test_images, verbose)
    result = knn_accuracy(train, train_labels, test, test_labels, k=k, temperature=temperature)
    result["seconds"] = time.time() - start
    return result


def main(argv):
    del argv
    result = knn_eval(FLAGS.encoder, FLAGS.dataset, FLAGS.data_dir, FLAGS.train_examples,
                      FLAGS.knn_k, FLAGS.knn_temperature, strict_images=FLAGS.strict_images)
    print(
        f"kNN (k={FLAGS.knn_k}, cosine) on {FLAGS.dataset} with {FLAGS.encoder}: "
        f"majority {result['majority']:.2%}, weighted (T={FLAGS.knn_temperature}) "
        f"{result['weighted']:.2%} in {result['seconds']:.0f}s"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
