"""Evaluation data for the recipes: a split as arrays, its features, the kNN monitor on it."""

import os
import zipfile


def load_split(dataset, split, data_dir=None, take=None, image_size=None, strict_images=False):
    """Images `[N, H, W, C]` (raw pixels) and labels `[N]` of one split, as NumPy arrays, and
    the `ImageSourceInfo` (`swav_keras.data.load_arrays`: Fashion-MNIST without TensorFlow).
    An image folder stays on disk (an `ImageFiles`): the encoders read it batch by batch.
    Its bad files are skipped with a warning, or with `strict_images` an error naming the
    first (`swav_keras.data.image_checks`)."""
    from swav_keras.data import load_arrays

    return load_arrays(dataset, split, data_dir, image_size, take=take, lazy=True,
                       strict_images=strict_images)


ENCODER_SPEC_HELP = (
    "a .keras encoder, or `random:W` for the fashion_mnist recipe's encoder of width W freshly "
    "initialised (seed 0), the main job's random-init baseline"
)


def read_encoder(path):
    """The encoder saved at `path`, a `.keras` file; the error says what is wrong with it.

    Keras answers "File not found" for a file that exists but is no `.keras` archive (a
    truncated copy, another format renamed): this says which of the two it is.
    """
    import keras

    if not isinstance(path, str) or not path.endswith(".keras"):
        raise ValueError(
            "`encoder` must be 'pixels' or a path to a .keras encoder; "
            f"received encoder={path!r}."
        )
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "no such file"
        raise ValueError(f"`encoder` must be a .keras file; received encoder={path!r}: {what}.")
    if not zipfile.is_zipfile(path):
        reason = "not a zip archive, as .keras files are: truncated, or saved in another format"
    else:
        try:
            return keras.models.load_model(path)
        except Exception as error:  # noqa: BLE001 (any reader error: said with the path)
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
    raise ValueError(
        f"`encoder` must be a readable .keras model; received encoder={path!r}: the file "
        f"exists but cannot be read as a .keras model ({reason})."
    )


def load_encoder(spec, info):
    """The encoder `spec` names (see `ENCODER_SPEC_HELP`), for images like `info`'s."""
    import keras

    from recipes import configs
    from recipes.builders import build_encoder

    if spec.startswith("random:"):
        keras.utils.set_random_seed(0)
        width = int(spec.split(":")[1])
        return build_encoder(configs.get_config("fashion_mnist", width=width), info)
    return read_encoder(spec)


def check_representation(representation, train_examples=None):
    """Checks an evaluation's `train_examples` and reads its encoder, before any data is
    loaded; returns `"pixels"` or the encoder (a path becomes the model read from it)."""
    from swav_keras.validation import check_int

    if train_examples is not None:
        check_int("train_examples", train_examples, minimum=1)
    if isinstance(representation, str) and representation != "pixels":
        return read_encoder(representation)
    return representation


def compute_features(representation, train_images, test_images, verbose="auto",
                     global_pooling=True):
    """Train and test features of `representation`.

    Args:
        representation: `"pixels"` (flattened raw pixels), a path to a `.keras` encoder, or a
            `keras.Model` encoder.
        train_images: `[N, H, W, C]` raw pixels.
        test_images: `[M, H, W, C]` raw pixels.
        verbose: progress bars of `predict`. Defaults to `"auto"`.
        global_pooling: the encoder's own output; `False` pools its last feature map 2x2
            instead (`swav_keras.evaluation.corner_pooled_encoder`). Defaults to `True`.
    """
    from swav_keras.evaluation import corner_pooled_encoder, extract_features, pixel_features

    if isinstance(representation, str) and representation == "pixels":
        if not global_pooling:
            raise ValueError(
                "`global_pooling=False` pools an encoder's last feature map; raw pixels have "
                "none: received encoder='pixels'."
            )
        return pixel_features(train_images)[0], pixel_features(test_images)[0]
    encoder = representation
    if isinstance(representation, str):
        encoder = read_encoder(representation)
    if not global_pooling:
        encoder = corner_pooled_encoder(encoder)
    train, _ = extract_features(encoder, train_images, verbose=verbose)
    test, _ = extract_features(encoder, test_images, verbose=verbose)
    return train, test


def score(representation, train, test, config, verbose="auto"):
    """kNN (majority and weighted) and linear-probe top-1/top-5 of one representation.

    `train` and `test` are `(images, labels)` of raw pixels; `config` gives `knn_k`,
    `knn_temperature` and `linear_epochs`. The main job scores each row of its table so.
    """
    from swav_keras.evaluation import knn_accuracy, linear_probe

    train_features, test_features = compute_features(representation, train[0], test[0], verbose)
    knn = knn_accuracy(train_features, train[1], test_features, test[1], k=config.knn_k,
                       temperature=config.knn_temperature)
    linear = linear_probe(train_features, train[1], test_features, test[1],
                          epochs=config.linear_epochs, verbose=verbose)
    return {"knn_majority": knn["majority"], "knn_weighted": knn["weighted"],
            "linear_top1": linear["top1"], "linear_top5": linear["top5"]}


def knn_monitor(config, data_dir=None, strict_images=False):
    """`KNNMonitor` on the first `config.knn_monitor_examples` train and test images."""
    from swav_keras.callbacks import KNNMonitor

    take, size = config.knn_monitor_examples, config.image_size or None
    train_images, train_labels, _ = load_split(config.dataset, "train", data_dir, take, size,
                                               strict_images)
    test_images, test_labels, _ = load_split(config.dataset, "test", data_dir, take, size,
                                             strict_images)
    return KNNMonitor((train_images, train_labels), (test_images, test_labels),
                      k=min(config.knn_k, len(train_images)), temperature=config.knn_temperature)
