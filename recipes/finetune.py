r"""Semi-supervised fine-tuning: the whole encoder and a linear classifier, on 1% / 10% labels.

SwAV's `eval_semisup.py` protocol: a class-balanced, seeded subset of the labelled training
split (`--label_fraction`, or `--labels_per_class`; `recipes.label_subset`), the encoder
unfrozen with a linear layer on its features, SGD momentum 0.9 with one learning rate for the
trunk and another for the last layer, coupled weight decay, step decay (x`--decay_factor` at
each of `--decay_epochs`), random crops and flips. In the same run the same architecture is
trained from random initialisation (same labels, same recipe, same seed), so the table shows
what pretraining gives. Top-1 / top-5 are those of the final epoch on the test split.

Command:

    KERAS_BACKEND=jax python -m recipes.finetune --encoder=runs/fmnist/encoder.keras \
        --dataset=fashion_mnist --label_fraction=0.01 --workdir=runs/finetune_1pct

It writes `<workdir>/results.json` (`{"swav": {"top1", "top5", "train_loss", "seconds"},
"random_init": {...}, "settings": {...}}`, accuracies as fractions, `train_loss` the last
epoch's mean or `null` where not finite) and prints a table. Every flag is checked
before anything is trained or written.

The original's values (ResNet-50, ImageNet, 224x224, batch 256): 20 epochs, decay x0.2 at
epochs 12 and 16; trunk / last-layer learning rates 0.02 / 5 for 1% and 0.01 / 0.2 for 10%;
no weight decay. The defaults here are for small images: 20 epochs with decays at 12 and 16
as the original, batch 64 (600 labels at 1% of Fashion-MNIST would make 3 steps an epoch at
256), trunk 0.02 / last layer 0.02, weight decay 5e-4, shifts of up to 1/8 of the side and
flips. The two rates were chosen with `--validation_fraction=0.2 --label_fraction=0.01`
(480 labels trained, 120 held out of the labelled subset and scored; the test split never
used for choosing) on two encoders, one with 128 features and one with 2,048 (grid
pooling): a higher last-layer rate lost little on the first and much on the second, whose
larger features make the same rate a larger step. Batch, weight decay and augmentation
were set, not compared (rates compared: `benchmarks/RESULTS.md`). A run whose last epoch
ends at over twice the chance-level loss, or not finite, warns that it diverged and names
the rates.

Expected result (the main job's encoder, TensorFlow, 2 CPU cores): 1% of Fashion-MNIST (600
labels) about 81% top-1 against 74% from random initialisation, a minute for both; 10%
about 90% against 89%, 8 minutes. Figures, the rates compared and the command:
`benchmarks/RESULTS.md`, "Fine-tuning".

ImageNet: tensorflow_datasets' `imagenet2012_subset/1pct` and `imagenet2012_subset/10pct` are
the paper's label subsets (SimCLR's lists, which `eval_semisup.py` downloads); their `train`
split is already the subset, so take all of it, and the test split is `validation`:

    python -m recipes.finetune --encoder=runs/imagenet/encoder.keras \
        --dataset=imagenet2012_subset/1pct --label_fraction=1 --test_split=validation \
        --image_size=224 --batch_size=256 --trunk_learning_rate=0.02 \
        --head_learning_rate=5 --weight_decay=0 --workdir=runs/semisup_1pct

(10%: `/10pct`, `--trunk_learning_rate=0.01 --head_learning_rate=0.2`.) Not run here: the
images are resized whole to `--image_size` (the original crops 224 of 256 for testing).
"""

import json
import math
import os
import time
import warnings

from absl import app, flags

from recipes.features import load_split, read_encoder
from recipes.finetune_training import train_classifier
from recipes.label_subset import check_exclusive, hold_out, label_subset

FLAGS = flags.FLAGS


def define_flags():
    """Defines the recipe's flags (called by the program, not at import)."""
    flags.DEFINE_string("encoder", None, "The SwAV encoder, a .keras file.")
    flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (train split, --test_split).")
    flags.DEFINE_string("data_dir", None, "Folder of the data.")
    flags.DEFINE_string("test_split", "test", "Split scored at the end (ImageNet: validation).")
    flags.DEFINE_integer("image_size", 0, "Resize images to this side first (0: keep).")
    flags.DEFINE_string("workdir", "runs/finetune", "Where results.json goes.")
    flags.DEFINE_float("label_fraction", None,
                       "Part of each class labelled, in (0, 1] (1%: 0.01, 10%: 0.1).")
    flags.DEFINE_integer("labels_per_class", None,
                         "Labelled images per class (instead of --label_fraction).")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training images.")
    flags.DEFINE_integer("test_examples", None, "Score only the first N test images.")
    flags.DEFINE_float("validation_fraction", 0.0,
                       "Hold out this part of each class of the labelled subset and score on "
                       "it instead of the test split: how to choose settings (0: off).")
    flags.DEFINE_integer("epochs", 20, "Epochs over the labelled subset (original: 20).")
    flags.DEFINE_integer("batch_size", 64, "Batch size (original: 256 on 8 GPUs).")
    flags.DEFINE_float("trunk_learning_rate", 0.02,
                       "Initial learning rate of the encoder (original: 0.02 at 1%, 0.01 at "
                       "10%).")
    flags.DEFINE_float("head_learning_rate", 0.02,
                       "Initial learning rate of the linear layer (original: 5 at 1%, 0.2 at "
                       "10%).")
    flags.DEFINE_list("decay_epochs", ["12", "16"], "Epochs at which the rates decay.")
    flags.DEFINE_float("decay_factor", 0.2, "Factor of each decay (original: 0.2).")
    flags.DEFINE_float("weight_decay", 5e-4,
                       "Coupled (L2) weight decay on every weight (original: 0).")
    flags.DEFINE_bool("augment", True,
                      "Random shifts (up to 1/8 of the side) and horizontal flips in training, "
                      "the small-image stand-in for the original's RandomResizedCrop + flip.")
    flags.DEFINE_integer("seed", 0, "Seed of the subset, initialisations and batch order.")
    flags.DEFINE_bool("random_init", True,
                      "Also train the same network from random initialisation (the baseline; "
                      "--norandom_init halves the time of a settings search).")


def finetune(encoder, workdir, dataset="fashion_mnist", label_fraction=None,
             labels_per_class=None, data_dir=None, test_split="test", image_size=0,
             train_examples=None, test_examples=None, validation_fraction=0.0, epochs=20,
             batch_size=64, trunk_learning_rate=0.02, head_learning_rate=0.02,
             decay_epochs=(12, 16), decay_factor=0.2, weight_decay=5e-4, augment=True,
             seed=0, verbose="auto", random_init=True):
    """Fine-tunes `encoder` (a `.keras` path) and a random-init twin; writes and returns the
    results (see the module docstring). Everything is checked before training or writing."""
    import keras

    from recipes.workdir import check_workdir_path
    from swav_keras.validation import check_float, check_int

    if not isinstance(encoder, str) or not encoder.endswith(".keras"):
        raise ValueError(
            f"`encoder` must be a path to a .keras encoder; received encoder={encoder!r}.")
    check_exclusive(label_fraction, labels_per_class)
    for name, value in (("train_examples", train_examples), ("test_examples", test_examples)):
        if value is not None:
            check_int(name, value, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    image_size = check_int("image_size", image_size, minimum=0)
    rates = dict(
        trunk_learning_rate=check_float("trunk_learning_rate", trunk_learning_rate, minimum=0),
        head_learning_rate=check_float("head_learning_rate", head_learning_rate,
                                       positive=True),
        decay_epochs=_check_decay_epochs(decay_epochs),
        decay_factor=check_float("decay_factor", decay_factor, positive=True),
        weight_decay=check_float("weight_decay", weight_decay, minimum=0),
    )
    seed = check_int("seed", seed)
    check_workdir_path(workdir)
    pretrained = read_encoder(encoder)

    size = image_size or None
    images, labels, info = load_split(dataset, "train", data_dir, train_examples, size)
    chosen = label_subset(labels, label_fraction, labels_per_class, seed)
    if validation_fraction:
        chosen, held = hold_out(chosen, labels, validation_fraction, seed)
        test_images, test_labels, evaluated_on = images[held], labels[held], "validation"
    else:
        test_images, test_labels, _ = load_split(dataset, test_split, data_dir, test_examples,
                                                 size)
        evaluated_on = test_split
    train = (images[chosen], labels[chosen])
    num_classes = max(info.num_classes, int(labels.max()) + 1)

    results = {}
    for name in ("swav", "random_init")[:2 if random_init else 1]:
        keras.utils.set_random_seed(seed)
        trunk = pretrained if name == "swav" else keras.models.clone_model(pretrained)
        start = time.time()
        if verbose:
            print(f"Fine-tuning the {name} encoder on {len(chosen)} labels:")
        results[name] = train_classifier(
            trunk, train, (test_images, test_labels), num_classes, epochs=epochs,
            batch_size=batch_size, augment=augment, seed=seed, verbose=verbose, **rates)[0]
        results[name]["seconds"] = round(time.time() - start, 1)
        loss = results[name]["train_loss"]
        _warn_if_diverged(name, loss, num_classes, rates)
        results[name]["train_loss"] = loss if math.isfinite(loss) else None  # strict JSON
    results["settings"] = dict(
        encoder=encoder, dataset=dataset, label_fraction=label_fraction,
        labels_per_class=labels_per_class, num_labels=int(len(chosen)),
        num_classes=num_classes, evaluated_on=evaluated_on,
        num_evaluated=int(len(test_labels)), epochs=epochs, batch_size=batch_size,
        momentum=0.9, augment=augment, seed=seed, backend=keras.backend.backend(),
        train_examples=train_examples, test_examples=test_examples,
        validation_fraction=validation_fraction, image_size=image_size, **rates)
    results["settings"]["decay_epochs"] = list(rates["decay_epochs"])
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def _warn_if_diverged(name, train_loss, num_classes, rates):
    # The loss starts near chance (ln C, a near-zero head); a last epoch at twice that means
    # the rates were too high for this encoder's features, whose scale grows with the
    # feature count (e.g. grid pooling). A run that merely learnt little stays below it.
    limit = 2 * math.log(num_classes)
    if math.isfinite(train_loss) and train_loss <= limit:
        return
    ended = (f"a training loss of {train_loss:.4g}, over twice chance level (2 ln "
             f"{num_classes} = {limit:.3f})" if math.isfinite(train_loss)
             else f"a non-finite training loss ({train_loss})")
    warnings.warn(
        f"Fine-tuning the {name} encoder ended with {ended}: it diverged and its accuracy is "
        "not a result. Lower head_learning_rate (received "
        f"{rates['head_learning_rate']}) and trunk_learning_rate (received "
        f"{rates['trunk_learning_rate']}), choosing them with validation_fraction.",
        stacklevel=3)


def _check_decay_epochs(decay_epochs):
    from swav_keras.validation import check_int_sequence

    values = [int(v) if isinstance(v, str) and v.strip().isdigit() else v
              for v in decay_epochs]
    return check_int_sequence("decay_epochs", values, minimum=1, min_length=0)


def table(results):
    """The results as a small text table."""
    settings = results["settings"]
    lines = [f"Fine-tuning on {settings['num_labels']} labels of {settings['dataset']} "
             f"({settings['epochs']} epochs), scored on {settings['num_evaluated']} "
             f"{settings['evaluated_on']} images:",
             f"{'initialisation':<16}{'top-1':>8}{'top-5':>8}{'seconds':>9}"]
    for name in ("swav", "random_init")[:len(results) - 1]:
        row = results[name]
        lines.append(f"{name:<16}{row['top1']:>8.2%}{row['top5']:>8.2%}{row['seconds']:>9.0f}")
    return "\n".join(lines)


def main(argv):
    del argv
    results = finetune(
        FLAGS.encoder, FLAGS.workdir, FLAGS.dataset, FLAGS.label_fraction,
        FLAGS.labels_per_class, FLAGS.data_dir, FLAGS.test_split, FLAGS.image_size,
        FLAGS.train_examples, FLAGS.test_examples, FLAGS.validation_fraction, FLAGS.epochs,
        FLAGS.batch_size, FLAGS.trunk_learning_rate, FLAGS.head_learning_rate,
        FLAGS.decay_epochs, FLAGS.decay_factor, FLAGS.weight_decay, FLAGS.augment, FLAGS.seed,
        random_init=FLAGS.random_init)
    print(table(results))
    print(f"Written to {os.path.join(FLAGS.workdir, 'results.json')}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
