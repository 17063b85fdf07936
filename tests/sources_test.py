"""Tests of `load_images`: arrays, image folders, Fashion-MNIST, tfds names and errors."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from swav_keras.data import fashion_mnist
from swav_keras.data.sources import load_images


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network, whatever the machine."""
    monkeypatch.setattr(fashion_mnist, "network_available", lambda *args, **kwargs: False)


def elements(dataset):
    pairs = list(dataset.as_numpy_iterator())
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def test_arrays_give_raw_pixels_labels_and_statistics():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 6, 5, 3)).astype("uint8")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3], dtype="int32")
    dataset, info = load_images((images, labels))
    got_images, got_labels = elements(dataset)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert dataset.element_spec[0].dtype == tf.uint8 and dataset.element_spec[1].dtype == tf.int64
    assert (info.num_examples, info.num_classes, info.image_shape) == (10, 4, (6, 5, 3))
    np.testing.assert_allclose(info.mean, images.mean((0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(info.std, images.std((0, 1, 2)), rtol=1e-12)


def test_arrays_take_resize_and_grayscale():
    images = np.arange(4 * 8 * 8, dtype="uint8").reshape(4, 8, 8)
    dataset, info = load_images((images, np.arange(4)), take=3, image_size=4)
    got, _ = elements(dataset)
    assert got.shape == (3, 4, 4, 1) and got.dtype == np.float32
    assert (info.num_examples, info.image_shape) == (3, (4, 4, 1))
    np.testing.assert_allclose(got[..., 0], tf.image.resize(images[:3, ..., None], [4, 4])[..., 0])
    np.testing.assert_allclose(info.mean, [images.mean()])  # statistics of all the images


def write_folder(root, size=(7, 9), mode="RGB", per_class=3):
    rng = np.random.default_rng(1)
    written = {}
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            pixels = rng.integers(0, 256, shape).astype("uint8")
            Image.fromarray(pixels, mode).save(root / name / f"{i}.png")
            written[(name, i)] = pixels
    return written


def test_image_folder_labels_from_subfolders_and_inferred_size(tmp_path):
    written = write_folder(tmp_path)
    dataset, info = load_images(str(tmp_path))
    images, labels = elements(dataset)
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    assert (info.num_examples, info.image_shape) == (6, (7, 9, 3))
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
    expected = np.stack([written[(n, i)] for n in ("cat", "dog") for i in range(3)])
    np.testing.assert_allclose(images, expected)  # PNG is lossless; raw 0..255 scale
    np.testing.assert_allclose(info.mean, expected.mean((0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(info.std, expected.std((0, 1, 2)), rtol=1e-9)
    _, small = load_images(str(tmp_path), image_size=(4, 5), take=2)
    assert (small.image_shape, small.num_examples) == ((4, 5, 3), 2)


def test_image_folder_splits_and_grayscale(tmp_path):
    write_folder(tmp_path / "train", mode="L")
    write_folder(tmp_path / "test", mode="L", per_class=1)
    dataset, info = load_images(tmp_path, split="test")
    assert (info.num_examples, info.image_shape) == (2, (7, 9, 1))
    assert elements(dataset)[0].shape == (2, 7, 9, 1)
    with pytest.raises(FileNotFoundError) as error:
        load_images(tmp_path, split="validation")
    assert str(error.value) == (
        f"Image folder {tmp_path} has no `validation` subfolder; a folder without split "
        "subfolders is read as split 'train'."
    )


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as error:
        load_images(tmp_path / "empty")
    assert str(error.value) == (
        f"No images (.bmp, .gif, .jpeg, .jpg, .png) found under {tmp_path / 'empty'}; expected "
        "one subfolder of images per class."
    )
    with pytest.raises(FileNotFoundError) as error:
        load_images(str(tmp_path / "nowhere"))
    assert str(error.value) == f"Image folder {tmp_path / 'nowhere'} does not exist."


def test_fashion_mnist_source_uses_training_statistics():
    dataset, info = load_images("fashion_mnist", split="test", take=5)
    images, labels = elements(dataset)
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
    assert labels[0] == 9 and info.class_names[9] == "Ankle boot"
    assert (info.num_examples, info.num_classes, info.image_shape) == (5, 10, (28, 28, 1))
    # The well-known training-set statistics, 0.2860 and 0.3530 in [0, 1] scale.
    np.testing.assert_allclose(np.array(info.mean) / 255, [0.2860], atol=1e-4)
    np.testing.assert_allclose(np.array(info.std) / 255, [0.3530], atol=1e-4)


def test_tfds_name_not_available_offline(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_images("cifar10", data_dir=str(tmp_path))
    assert str(error.value) == (
        f"tensorflow_datasets dataset 'cifar10' is not prepared in {tmp_path}/cifar10/3.0.2 and "
        "no network answers to download it. Prepare it on a machine with internet "
        "(`tfds build cifar10 --data_dir=DIR`), copy DIR here and pass it as `data_dir`."
    )
    with pytest.raises(FileNotFoundError) as error:
        load_images("imagenet2012", data_dir=str(tmp_path))
    assert f"put its files in {tmp_path}/downloads/manual" in str(error.value)
    assert "ILSVRC2012_img_train.tar" in str(error.value)


def test_tfds_dataset_when_prepared(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(fashion_mnist, "network_available", lambda *args, **kwargs: True)
    with tfds.testing.mock_data(num_examples=6):
        dataset, info = load_images("cifar10", data_dir=str(tmp_path), take=4, image_size=8)
        images, labels = elements(dataset)
    assert images.shape == (4, 8, 8, 3) and labels.dtype == np.int64
    assert (info.num_examples, info.num_classes, info.image_shape) == (4, 10, (8, 8, 3))
    assert len(info.mean) == 3 and all(0 < s < 255 for s in info.std)


@pytest.mark.parametrize(
    "source, kwargs, error, message",
    [
        ("no_such_dataset", {}, ValueError,
         "`source` must be 'fashion_mnist', a tensorflow_datasets name, an existing image folder "
         "or (images, labels) arrays; received source='no_such_dataset'."),
        (42, {}, TypeError,
         "`source` must be a dataset name, a folder or an (images, labels) pair; "
         "received source=42."),
        ("fashion_mnist", dict(take=0), ValueError,
         "`take` must be a positive integer; received take=0."),
        ("fashion_mnist", dict(image_size=(0, 4)), ValueError,
         "`image_size` must be a positive int or a (height, width) pair of positive ints; "
         "received image_size=(0, 4)."),
        ((np.zeros((3, 4, 4)), np.zeros(2)), {}, ValueError,
         "`source` arrays must be images [N, H, W(, C)] and labels [N]; received "
         "images.shape=(3, 4, 4, 1), labels.shape=(2,)."),
    ],
)
def test_bad_sources_and_arguments(source, kwargs, error, message):
    with pytest.raises(error) as info:
        load_images(source, **kwargs)
    assert str(info.value) == message
