"""Tests of `load_arrays`: Fashion-MNIST by NumPy alone, the same as `load_images`."""

import numpy as np
import pytest
from no_tensorflow import run_without_tensorflow

from swav_keras.data import load_arrays, load_images


def test_fashion_mnist_arrays_equal_load_images():
    images, labels, info = load_arrays("fashion_mnist", "test", take=300)
    dataset, expected_info = load_images("fashion_mnist", "test", take=300)
    pixels, expected = next(iter(dataset.batch(300)))
    np.testing.assert_array_equal(images, pixels.numpy())
    np.testing.assert_array_equal(labels, expected.numpy())
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert info == expected_info  # statistics of the training split, class names, counts
    assert info.num_examples == 300 and info.image_shape == (28, 28, 1)


def test_other_sources_and_resizing_go_through_load_images():
    rng = np.random.default_rng(0)
    source = (rng.integers(0, 256, (10, 8, 8, 3)).astype("uint8"), np.arange(10) % 3)
    images, labels, info = load_arrays(source, take=4)
    np.testing.assert_array_equal(images, source[0][:4])
    assert labels.tolist() == [0, 1, 2, 0] and info.num_classes == 3
    resized, _, info = load_arrays("fashion_mnist", "test", image_size=14, take=5)
    assert resized.shape == (5, 14, 14, 1) and info.image_shape == (14, 14, 1)


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
