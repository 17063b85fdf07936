r"""Linear evaluation of a frozen encoder (or of raw pixels): top-1 and top-5.

A linear classifier on frozen features trained with `model.fit`, as SwAV's `eval_linear.py`
(SGD momentum 0.9, learning rate 0.3 with cosine decay, weight decay 1e-6, batch 256, 100
epochs), on features extracted once (see `swav_keras.evaluation.linear_probe` for the
differences from the original, e.g. no train-time augmentation).

Command:

    KERAS_BACKEND=jax python -m recipes.linear_eval --encoder=runs/fmnist/encoder.keras
    python -m recipes.linear_eval --encoder=pixels --linear_epochs=30

Figures (full Fashion-MNIST, 30 epochs, 2 CPU cores): raw pixels 82.66%; the main job's SwAV
encoder 88.27% (TensorFlow) and 88.76% (JAX); details in `benchmarks/RESULTS.md`. 30 probe
epochs scored within 0.05 point of the original's 100 on the encoders of
`experiments/README.md` ("Linear evaluation without global pooling").

Without global pooling, as the original's `eval_linear.py --global_pooling false` (the
encoder's last feature map average-pooled to 2x2 by four overlapping windows, 4x the
features):

    python -m recipes.linear_eval --encoder=runs/s3w32bf16/encoder.keras --noglobal_pooling

This protocol keeps where things are in the image: on the three-stage width-32 encoder it
scored above the globally pooled features (figures: `experiments/README.md`, "Linear
evaluation without global pooling"). Quote the protocol with the figure.
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
    flags.DEFINE_integer(
        "linear_epochs", 100,
        "Epochs of the classifier (the original's 100).",
    )
    flags.DEFINE_float(
        "linear_learning_rate", 0.3,
        "Initial learning rate (cosine-decayed) on standardised features.",
    )
    flags.DEFINE_float("linear_weight_decay", 1e-6, "Coupled (L2) weight decay.")
    flags.DEFINE_bool(
        "global_pooling", True,
        "Probe the encoder's globally pooled features; --noglobal_pooling: its last map "
        "pooled 2x2, as the original's `--global_pooling false`.",
    )


def linear_eval(representation, dataset="fashion_mnist", data_dir=None, train_examples=None,
                epochs=100, learning_rate=0.3, weight_decay=1e-6, verbose="auto",
                global_pooling=True, strict_images=False):
    """Returns `{"top1", "top5", "seconds"}` of a linear probe on frozen features (with
    `global_pooling=False`, on the encoder's last map pooled 2x2, as `--noglobal_pooling`);
    an image folder's bad files are skipped with a warning, or with `strict_images` an error
    naming the first."""
    from swav_keras.data.image_checks import check_strict_images
    from swav_keras.evaluation import linear_probe

    start = time.time()
    representation = check_representation(representation, train_examples)
    check_strict_images(strict_images)
    train_images, train_labels, _ = load_split(dataset, "train", data_dir, train_examples,
                                               strict_images=strict_images)
    test_images, test_labels, _ = load_split(dataset, "test", data_dir,
                                             strict_images=strict_images)
    train, test = compute_features(representation, train_images, test_images, verbose,
                                   global_pooling)
    result = linear_probe(train, train_labels, test, test_labels, epochs=epochs,
                          learning_rate=learning_rate, weight_decay=weight_decay,
                          verbose=verbose)
    return {"top1": result["top1"], "top5": result["top5"], "seconds": time.time() - start}


def main(argv):
    del argv
    result = linear_eval(FLAGS.encoder, FLAGS.dataset, FLAGS.data_dir, FLAGS.train_examples,
                         FLAGS.linear_epochs, FLAGS.linear_learning_rate,
                         FLAGS.linear_weight_decay, global_pooling=FLAGS.global_pooling,
                         strict_images=FLAGS.strict_images)
    pooling = "" if FLAGS.global_pooling else ", last map pooled 2x2"
    print(
        f"Linear probe on {FLAGS.dataset} with {FLAGS.encoder} ({FLAGS.linear_epochs} epochs"
        f"{pooling}): "
        f"top-1 {result['top1']:.2%}, top-5 {result['top5']:.2%} in {result['seconds']:.0f}s"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
