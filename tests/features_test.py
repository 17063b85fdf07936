"""Tests of `swav_keras.evaluation.features`, run under every backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from swav_keras.data import ImageFiles
from swav_keras.evaluation.features import encode, extract_features, pixel_features


def _encoder():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.GlorotUniform(0))(x)
    # Moving statistics that differ from a batch's: inference mode is visible in the output.
    x = keras.layers.BatchNormalization(
        moving_mean_initializer=keras.initializers.Constant(0.3),
        moving_variance_initializer=keras.initializers.Constant(4.0),
    )(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs)


def _images(n=10, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 8, 8, 1)).astype("float32")


def _expected(encoder, images):
    return keras.ops.convert_to_numpy(encoder(images, training=False))


def test_array_without_labels():
    encoder, images = _encoder(), _images()
    features, labels = extract_features(encoder, images, batch_size=3, verbose=0)
    assert labels is None
    assert features.dtype == np.float32 and features.shape == (10, 4)
    np.testing.assert_allclose(features, _expected(encoder, images), rtol=1e-5, atol=1e-6)
    training_mode = keras.ops.convert_to_numpy(encoder(images, training=True))
    assert np.abs(features - training_mode).max() > 1e-2  # BatchNorm ran in inference mode


def test_tuple_with_labels():
    encoder, images = _encoder(), _images()
    labels = np.arange(10)[:, None]  # [N, 1] labels come back flat
    features, out_labels = extract_features(encoder, (images, labels), verbose=0)
    np.testing.assert_array_equal(out_labels, np.arange(10))
    np.testing.assert_allclose(features, _expected(encoder, images), rtol=1e-5, atol=1e-6)


def test_image_files_are_read_batch_by_batch(tmp_path):
    from PIL import Image

    encoder, images = _encoder(), np.rint(_images(n=7)).astype("uint8")
    paths = [str(tmp_path / f"{i}.png") for i in range(7)]
    for path, image in zip(paths, images):
        Image.fromarray(image[..., 0]).save(path)
    files, labels = ImageFiles(paths), np.arange(7)
    expected = _expected(encoder, images.astype("float32"))
    features, out_labels = extract_features(encoder, (files, labels), batch_size=3, verbose=0)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)  # 3 + 3 + 1, in order
    np.testing.assert_array_equal(out_labels, labels)
    np.testing.assert_allclose(encode(encoder, files, batch_size=4), expected, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(pixel_features(files)[0], images.reshape(7, -1))
    with pytest.raises(ValueError, match=r"`labels` must hold one label per image \(7\)"):
        extract_features(encoder, (files, labels[:5]), verbose=0)


@pytest.mark.parametrize("batched", [False, True])
def test_dataset_labels_stay_aligned_when_reshuffled(batched):
    encoder, images = _encoder(), _images()
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(10)))
    dataset = dataset.shuffle(10, seed=1, reshuffle_each_iteration=True)
    if batched:
        dataset = dataset.batch(4)
    features, labels = extract_features(encoder, dataset, batch_size=3, verbose=0)
    assert sorted(labels.tolist()) == list(range(10))
    assert labels.tolist() != list(range(10))  # shuffled, so alignment is really tested
    np.testing.assert_allclose(features, _expected(encoder, images[labels]), rtol=1e-5, atol=1e-6)


def test_dataset_of_images_only_with_progress_bar(capsys):
    encoder, images = _encoder(), _images()
    dataset = tf.data.Dataset.from_tensor_slices(images)
    features, labels = extract_features(encoder, dataset, batch_size=4, verbose=1)
    assert labels is None
    np.testing.assert_allclose(features, _expected(encoder, images), rtol=1e-5, atol=1e-6)
    assert "3/3" in capsys.readouterr().out  # 10 images in batches of 4


def test_pixel_features():
    images, labels = _images(6), np.arange(6, dtype="uint8")
    expected = images.reshape(6, -1)
    features, out_labels = pixel_features((images, labels))
    assert features.dtype == np.float32 and features.shape == (6, 64)
    np.testing.assert_array_equal(features, expected)
    np.testing.assert_array_equal(out_labels, labels)
    features, out_labels = pixel_features(images.astype("uint8"))
    assert out_labels is None and features.dtype == np.float32
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    for data in (dataset, dataset.batch(4)):
        features, out_labels = pixel_features(data)
        np.testing.assert_array_equal(features, expected)
        np.testing.assert_array_equal(out_labels, labels)
    features, out_labels = pixel_features(tf.data.Dataset.from_tensor_slices(images))
    assert out_labels is None
    np.testing.assert_array_equal(features, expected)


def _error(function, *args, **kwargs):
    with pytest.raises((ValueError, TypeError)) as info:
        function(*args, **kwargs)
    return str(info.value)


def test_errors():
    encoder, images = _encoder(), _images()
    assert _error(extract_features, lambda x: x, images) == (
        "`encoder` must be a keras.Model; received encoder of type function."
    )
    assert _error(extract_features, encoder, images, batch_size=0) == (
        "`batch_size` must be a positive integer; received batch_size=0."
    )
    assert _error(extract_features, encoder, images, verbose=3) == (
        '`verbose` must be "auto", 0, 1 or 2; received verbose=3.'
    )
    assert _error(extract_features, encoder, (images, np.arange(9))) == (
        "`labels` must hold one label per image (10); received len(labels)=9."
    )
    assert _error(extract_features, encoder, (images, np.arange(10), None)) == (
        "`data` must be an (images, labels) tuple of two arrays; received a tuple of length 3."
    )
    assert _error(pixel_features, [images]) == (
        "`data` must be a NumPy array of images, an (images, labels) tuple or a "
        "tf.data.Dataset; received data of type list."
    )
    assert _error(pixel_features, np.arange(5)) == (
        "`images` must be an array [N, ...] of at least 2 dimensions; received images.shape=(5,)."
    )
    dataset = tf.data.Dataset.from_tensor_slices(images[:, :, :, 0])
    assert _error(extract_features, encoder, dataset) == (
        "`data` must yield images of rank 3 (unbatched) or 4 (batched) for this encoder; "
        "received images of rank 2."
    )
    triples = tf.data.Dataset.from_tensor_slices((images, np.arange(10), np.arange(10)))
    assert _error(extract_features, encoder, triples) == (
        "`data` must be a tf.data.Dataset of (image, label) pairs or of images; "
        "received a dataset of 3-tuples."
    )
    flat = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    assert _error(extract_features, flat, images, verbose=0) == (
        "`encoder` must return one 2-D feature array [batch, D]; "
        "received an output of shape (10, 6, 6, 2)."
    )
