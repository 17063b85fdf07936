"""Tests of the offline Fashion-MNIST reader: real files, search order, damaged files."""

import gzip
import os

import numpy as np
import pytest

from swav_keras.data import fashion_mnist
from swav_keras.data.fashion_mnist import load_fashion_mnist, search_dirs

NETWORK_AVAILABLE = fashion_mnist.network_available  # before the fixture replaces it


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network, whatever the machine."""
    monkeypatch.setattr(fashion_mnist, "network_available", lambda *args, **kwargs: False)
    monkeypatch.delenv(fashion_mnist.DATA_DIR_ENV, raising=False)


def idx_bytes(array, magic, count=None):
    header = [magic, len(array) if count is None else count, *array.shape[1:]]
    return b"".join(int(v).to_bytes(4, "big") for v in header) + array.astype("uint8").tobytes()


def write_split(directory, n=5, prefix="t10k", compress=True, images=None, labels=None):
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, 28, 28)) if images is None else images
    labels = rng.integers(0, 10, (n,)) if labels is None else labels
    os.makedirs(directory, exist_ok=True)
    for kind, data in (("images-idx3", idx_bytes(images, 2051)),
                       ("labels-idx1", idx_bytes(labels, 2049))):
        path = os.path.join(directory, f"{prefix}-{kind}-ubyte" + (".gz" if compress else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if compress else data)
    return images, labels


def test_real_files_shapes_dtypes_and_balance():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels), [n // 10] * 10)
        assert labels[0] == 9  # both splits start with an ankle boot
        assert images.max() == 255 and images.min() == 0


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    images, labels = load_fashion_mnist("test")
    plain = tmp_path / "plain"
    write_split(plain, images=images[..., 0], labels=labels, compress=False)
    again_images, again_labels = load_fashion_mnist("test", data_dir=plain)
    np.testing.assert_array_equal(again_images, images)
    np.testing.assert_array_equal(again_labels, labels)


def test_search_order_and_environment_variable(tmp_path, monkeypatch):
    assert search_dirs(tmp_path) == [str(tmp_path), str(tmp_path / "fashion-mnist")]
    monkeypatch.setenv(fashion_mnist.DATA_DIR_ENV, str(tmp_path))
    assert search_dirs() == [
        str(tmp_path),
        str(tmp_path / "fashion-mnist"),
        "/usr/share/datasets/fashion-mnist",
        os.path.expanduser("~/.keras/datasets/fashion-mnist"),
    ]
    images, labels = write_split(tmp_path / "fashion-mnist", n=7)
    found_images, found_labels = load_fashion_mnist("test")
    np.testing.assert_array_equal(found_images[..., 0], images)
    np.testing.assert_array_equal(found_labels, labels)


def test_missing_data_lists_the_places_and_the_remedies(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("train", data_dir=missing)
    message = str(info.value)
    assert f"  - {missing}\n  - {missing / 'fashion-mnist'}\n" in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "no network to download it" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "`data_dir` (`--data_dir`)" in message


def test_bad_split():
    with pytest.raises(ValueError) as info:
        load_fashion_mnist("validation")
    assert str(info.value) == "`split` must be 'train' or 'test'; received split='validation'."


def corrupt(tmp_path, kind, data):
    write_split(tmp_path)
    path = tmp_path / f"t10k-{kind}-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_fashion_mnist("test", data_dir=tmp_path)
    return str(path), str(info.value)


def test_wrong_magic_number(tmp_path):
    labels_as_images = idx_bytes(np.zeros(5), 2049)
    path, message = corrupt(tmp_path, "images-idx3", gzip.compress(labels_as_images))
    assert message == (
        f"Fashion-MNIST file {path} has magic number 2049, expected 2051: "
        "not an idx file of this kind."
    )


def test_truncated_file(tmp_path):
    data = idx_bytes(np.zeros((5, 28, 28)), 2051)[:-100]
    path, message = corrupt(tmp_path, "images-idx3", gzip.compress(data))
    assert message == (
        f"Fashion-MNIST file {path} holds 3820 bytes of data, but its header announces 5 items "
        "(3920 bytes): truncated or corrupt."
    )
    path, message = corrupt(tmp_path, "labels-idx1", gzip.compress(b"\x00\x00"))
    assert message == f"Fashion-MNIST file {path} is truncated: 2 bytes."


def test_wrong_count_and_shape(tmp_path):
    path, message = corrupt(tmp_path, "labels-idx1", gzip.compress(idx_bytes(np.zeros(4), 2049)))
    assert message == (
        f"Fashion-MNIST files {tmp_path / 't10k-images-idx3-ubyte.gz'} and {path} disagree: "
        "5 images but 4 labels."
    )
    small = idx_bytes(np.zeros((5, 14, 14)), 2051)
    path, message = corrupt(tmp_path, "images-idx3", gzip.compress(small))
    assert message == (
        f"Fashion-MNIST file {path} holds items of shape (14, 14), expected (28, 28)."
    )
    path, message = corrupt(tmp_path, "labels-idx1", gzip.compress(idx_bytes(np.full(5, 12), 2049)))
    assert message == f"Fashion-MNIST file {path} holds label 12, outside 0..9."


def test_bad_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((5, 28, 28)), 2051))
    path, message = corrupt(tmp_path, "images-idx3", good[: len(good) // 2])
    assert message.startswith(f"Fashion-MNIST file {path} is not a readable gzip/idx file: ")
    path, message = corrupt(tmp_path, "images-idx3", good[:10] + b"\xff" * 40)
    assert message.startswith(f"Fashion-MNIST file {path} is not a readable gzip/idx file: ")


def test_network_check_answers_false_for_an_unreachable_host():
    # ".invalid" never resolves (RFC 2606); the check is bounded by its timeout either way.
    assert NETWORK_AVAILABLE("host.invalid", timeout=1.0) is False
