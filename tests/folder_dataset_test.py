"""An image folder through tf.data: decoded as Keras does, bad files named, epochs kept whole."""

import re

import numpy as np
import pytest
import tensorflow as tf
from image_folders import add_bad_files, write_folder

from swav_keras.data import load_arrays, load_images
from swav_keras.data.folder_dataset import folder_dataset
from swav_keras.data.image_checks import (
    BadImageError,
    BadImageWarning,
    bad_images,
    named_errors,
)


def _pixels(dataset):
    return np.stack([image.numpy() for image, _ in dataset])


def test_decodes_as_keras_image_dataset_from_directory(tmp_path):
    write_folder(tmp_path, [(6, 7), (8, 5), (6, 7)])
    dataset, info = load_images(str(tmp_path))
    keras_dataset = tf.keras.utils.image_dataset_from_directory(
        str(tmp_path), batch_size=None, image_size=(6, 7), shuffle=False, verbose=False)
    np.testing.assert_array_equal(_pixels(dataset), _pixels(keras_dataset))
    assert [int(y) for _, y in dataset] == [int(y) for _, y in keras_dataset]
    assert dataset.element_spec[0].shape == (6, 7, 3) and dataset.cardinality() == 3


def test_bad_files_are_skipped_named_and_the_epoch_keeps_its_length(tmp_path):
    paths = write_folder(tmp_path, [(8, 8)] * 10)
    truncated, empty, text = add_bad_files(tmp_path, paths[6])  # deep, after the first images
    with pytest.warns(BadImageWarning) as caught:
        dataset, info = load_images(str(tmp_path))  # the statistics decode every image
    messages = [str(w.message) for w in caught]
    assert messages[:2] == [f"Skipping image {empty}: empty file (0 bytes).",
                            f"Skipping image {text}: not a PNG, JPEG, GIF, BMP or WebP file "
                            "(it starts with b'not an i')."]
    assert re.fullmatch(rf"Skipping image {re.escape(truncated)}: TensorFlow cannot decode it "
                        r"\(Invalid PNG data, size \d+\)\.", messages[2])
    assert len(messages) == 3 and set(bad_images(str(tmp_path))) == {truncated, empty, text}
    # The empty and the text file are left out; the truncated one's place is taken by the
    # first image, at the end: ten images, two full batches of five in every epoch.
    pillow, labels, _ = load_arrays(str(tmp_path))
    good = [i for i in range(10) if i != 6]
    expected = np.concatenate([pillow[good], pillow[:1]]).astype(np.float32)
    assert info.num_examples == 10
    np.testing.assert_array_equal(_pixels(dataset), expected)
    assert [int(y) for _, y in dataset] == labels[good + [0]].tolist()
    batches = dataset.batch(5, drop_remainder=True)
    assert [tuple(x.shape) for x, _ in batches] == [(5, 8, 8, 3)] * 2


def test_strict_images_refuses_a_bad_header_before_decoding_and_names_a_bad_decode(tmp_path):
    paths = write_folder(tmp_path, [(8, 8)] * 6)
    truncated, empty, _ = add_bad_files(tmp_path, paths[4])
    with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(empty)}: empty"):
        load_images(str(tmp_path), strict_images=True)
    for path in (tmp_path / "a" / "empty.png", tmp_path / "b" / "notes.png"):
        path.unlink()
    # The statistics read two images: the truncated one is met when the stream reaches it.
    dataset, _ = load_images(str(tmp_path), strict_images=True, stats_examples=2)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"Cannot read image {re.escape(truncated)}: TensorFlow cannot "
                             r"decode it \(Invalid PNG data.*\(strict_images: remove or "
                             "replace the file"):
        _pixels(dataset)  # as `fit` shows it: tf.data's error, naming the file
    with pytest.raises(BadImageError, match=f"^Cannot read image {re.escape(truncated)}: "):
        with named_errors():
            _pixels(dataset)


def test_bad_files_first_and_last_are_named_and_filled(tmp_path):
    paths = write_folder(tmp_path, [(4, 4)] * 5)
    for path in (paths[0], paths[4]):
        with open(path, "r+b") as file:
            file.truncate(40)
    with pytest.warns(BadImageWarning) as caught:
        dataset = folder_dataset(paths, np.arange(5), (4, 4), 3)
        labels = [int(y) for _, y in dataset]
    assert labels == [1, 2, 3, 1, 2]  # the second pass fills both places
    assert sorted(str(w.message).split(":")[0] for w in caught) == [
        f"Skipping image {paths[0]}", f"Skipping image {paths[4]}"]
