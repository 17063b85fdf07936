"""The recipe's picture of what each cluster holds, from the trained model's parts."""

import os

import numpy as np


def plot_clusters(encoder, projection_head, prototypes, images, path, info, examples=2000):
    """Writes the images nearest to the most used prototypes, from a sample of `images`.

    Args:
        encoder, projection_head, prototypes: the parts of a trained `swav_keras.SwAV`.
        images: a `tf.data.Dataset` of `(image, label)` pairs, or an `(images, labels)` pair
            of arrays; raw pixels.
        path: the PNG to write.
        info: the dataset's `swav_keras.data.ImageSourceInfo` (class names for captions).
        examples: how many of the first images to embed. Defaults to `2000`.

    Returns:
        The labels of the sampled images, a NumPy array.
    """
    import keras

    from swav_keras.evaluation import encode
    from swav_keras.layers.l2_normalize import L2Normalize
    from swav_keras.visualization import plot_prototype_neighbours

    if isinstance(images, tuple):
        pixels, labels = (np.asarray(a[:examples]) for a in images)
    else:
        pixels, labels = next(iter(images.take(examples).batch(examples)))
        pixels, labels = pixels.numpy(), labels.numpy()
    # Direct calls, not `predict`: under a multi-worker strategy `predict` is a collective
    # that the other workers, which do not plot, would never join.
    features = encode(encoder, pixels)
    embeddings = keras.ops.convert_to_numpy(
        L2Normalize()(projection_head(features, training=False))
    )
    kernel = keras.ops.convert_to_numpy(prototypes.kernel).T
    plot_prototype_neighbours(pixels, embeddings, kernel, os.fspath(path), labels=labels,
                              class_names=info.class_names)
    return labels
