"""Evaluation features for the recipes: an encoder's, a random encoder's, or raw pixels."""

import numpy as np


def load_split(dataset, split, data_dir=None, take=None, image_size=None):
    """Images `[N, H, W, C]` (raw pixels) and labels `[N]` of one split, as NumPy arrays."""
    from swav_keras.data import load_images

    images, info = load_images(dataset, split, data_dir, image_size, take=take)
    pixels, labels = [], []
    for x, y in images.batch(4096):
        pixels.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(pixels), np.concatenate(labels), info


def compute_features(representation, train_images, test_images, verbose="auto"):
    """Train and test features of `representation`.

    Args:
        representation: `"pixels"` (flattened raw pixels), a path to a `.keras` encoder, or a
            `keras.Model` encoder.
        train_images: `[N, H, W, C]` raw pixels.
        test_images: `[M, H, W, C]` raw pixels.
        verbose: progress bars of `predict`. Defaults to `"auto"`.
    """
    import keras

    from swav_keras.evaluation import extract_features, pixel_features

    if isinstance(representation, str) and representation == "pixels":
        return pixel_features(train_images)[0], pixel_features(test_images)[0]
    encoder = representation
    if isinstance(representation, str):
        if not representation.endswith(".keras"):
            raise ValueError(
                "`encoder` must be 'pixels' or a path to a .keras encoder; "
                f"received encoder={representation!r}."
            )
        encoder = keras.models.load_model(representation)
    train, _ = extract_features(encoder, train_images, verbose=verbose)
    test, _ = extract_features(encoder, test_images, verbose=verbose)
    return train, test
