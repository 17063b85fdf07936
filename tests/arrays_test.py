"""Tests of `load_arrays`: Fashion-MNIST, folders, arrays without TensorFlow, as `load_images`."""

import keras
import numpy as np
import pytest
from image_folders import write_folder
from no_tensorflow import other_backend, run_without_tensorflow

from swav_keras.data import load_arrays, load_images
from swav_keras.data.image_checks import BadImageWarning


def test_fashion_mnist_arrays_equal_load_images():
    images, labels, info = load_arrays("fashion_mnist", "test", take=300)
    dataset, expected_info = load_images("fashion_mnist", "test", take=300)
    pixels, expected = next(iter(dataset.batch(300)))
    np.testing.assert_array_equal(images, pixels.numpy())
    np.testing.assert_array_equal(labels, expected.numpy())
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert info == expected_info  # statistics of the training split, class names, counts
    assert info.num_examples == 300 and info.image_shape == (28, 28, 1)


def as_loaded(source, split="train", **kwargs):
    """What `load_images` (tf.data) gives: images, labels, info."""
    dataset, info = load_images(source, split, **kwargs)
    images, labels = next(iter(dataset.batch(10_000)))
    return images.numpy(), labels.numpy(), info


def test_arrays_equal_load_images_and_resize_as_it_does():
    rng = np.random.default_rng(0)
    source = (rng.integers(0, 256, (10, 8, 8, 3)).astype("uint8"), np.arange(10) % 3)
    images, labels, info = load_arrays(source, take=4)
    np.testing.assert_array_equal(images, source[0][:4])
    assert labels.tolist() == [0, 1, 2, 0] and info.num_classes == 3
    assert info == as_loaded(source, take=4)[2]
    resized, _, info = load_arrays(source, image_size=(5, 6), take=4)
    expected, _, expected_info = as_loaded(source, image_size=(5, 6), take=4)
    assert resized.dtype == np.float32 and info == expected_info
    np.testing.assert_allclose(resized, expected, atol=1e-3)  # tf.image.resize, bilinear
    resized, _, info = load_arrays("fashion_mnist", "test", image_size=14, take=5)
    assert resized.shape == (5, 14, 14, 1) and info.image_shape == (14, 14, 1)
    np.testing.assert_allclose(
        resized, as_loaded("fashion_mnist", "test", image_size=14, take=5)[0], atol=1e-3)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_image_folders_equal_load_images(tmp_path, mode):
    write_folder(tmp_path / "train", [(6, 7)] * 5, mode)
    write_folder(tmp_path / "test", [(6, 7)] * 2, mode)
    for split, take in (("train", None), ("train", 3), ("test", None)):
        images, labels, info = load_arrays(str(tmp_path), split, take=take)
        expected, expected_labels, expected_info = as_loaded(str(tmp_path), split, take=take)
        assert images.dtype == np.uint8 and images.shape[-1] == (3 if mode == "RGB" else 1)
        np.testing.assert_array_equal(images, expected)  # same order: class by class, sorted
        np.testing.assert_array_equal(labels, expected_labels)
        assert info == expected_info
    assert info.class_names == ("a", "b") and labels.tolist() == [0, 1]
    train = load_arrays(str(tmp_path), "train")[0].astype(np.float64)
    # Statistics of the training split, whatever split is read.
    np.testing.assert_allclose(info.mean, train.mean((0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(info.std, train.std((0, 1, 2)), rtol=1e-9)


def test_image_folder_sizes_and_bad_files(tmp_path):
    write_folder(tmp_path, [(6, 7), (8, 5), (6, 7)])  # the first image gives the size
    images, labels, info = load_arrays(str(tmp_path))
    expected, _, expected_info = as_loaded(str(tmp_path))
    assert images.dtype == np.float32 and images.shape == (3, 6, 7, 3)
    np.testing.assert_allclose(images, expected, atol=1e-3)
    assert info.image_shape == expected_info.image_shape == (6, 7, 3)
    small, _, info = load_arrays(str(tmp_path), image_size=4)
    assert small.shape == (3, 4, 4, 3) and info.image_shape == (4, 4, 3)
    (tmp_path / "a" / "0.png").write_bytes(b"not a png")  # skipped, or an error naming it
    with pytest.warns(BadImageWarning, match=r"Skipping image .*0\.png: not a PNG"):
        assert load_arrays(str(tmp_path))[0].shape == (3, 6, 7, 3)  # the first file skipped
    with pytest.raises(ValueError, match=r"Cannot read image .*0\.png: not a PNG"):
        load_arrays(str(tmp_path), strict_images=True)
    with pytest.raises(FileNotFoundError, match="has no `test` subfolder"):
        load_arrays(str(tmp_path), "test")


def test_bad_arguments():
    with pytest.raises(ValueError, match="`take` must be a positive integer; received take=0."):
        load_arrays("fashion_mnist", take=0)
    with pytest.raises(TypeError, match="`split` must be a string; received split=1."):
        load_arrays("fashion_mnist", split=1)


def test_fashion_mnist_needs_no_tensorflow():
    out = run_without_tensorflow("""
        import numpy as np
        from swav_keras.data import load_arrays
        images, labels, info = load_arrays("fashion_mnist", "train")
        assert images.shape == (60000, 28, 28, 1), images.shape
        assert (np.bincount(labels) == 6000).all()
        print("mean", round(info.mean[0], 2), "tensorflow" in sys.modules)
    """, "jax")
    assert "mean 72.94 False" in out  # Fashion-MNIST's training pixel mean, no TensorFlow


def test_folders_and_arrays_need_no_tensorflow(tmp_path):
    write_folder(tmp_path, [(6, 7)] * 4)
    out = run_without_tensorflow(f"""
        import numpy as np
        from swav_keras.data import load_arrays
        images, labels, info = load_arrays({str(tmp_path)!r}, image_size=5)
        pairs, _, _ = load_arrays((np.zeros((3, 4, 4)), np.arange(3)), image_size=2)
        print(images.shape, labels.tolist(), info.class_names, pairs.shape,
              "tensorflow" in sys.modules)
    """, other_backend(keras.backend.backend()))
    assert "(4, 5, 5, 3) [0, 0, 1, 1] ('a', 'b') (3, 2, 2, 1) False" in out
