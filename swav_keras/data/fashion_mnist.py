"""Fashion-MNIST read offline from its idx files, with a tfds fallback when online.

The reference CPU workload of swav-keras trains on Fashion-MNIST. Reading the original idx files
with NumPy needs neither network nor `tensorflow_datasets`: Debian's `dataset-fashion-mnist`
installs them in `/usr/share/datasets/fashion-mnist`. Damaged files raise a `ValueError` naming
the file instead of giving a silently short dataset.

Reference: Xiao et al., "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms", arXiv:1708.07747, 2017.
"""

import gzip
import os
import socket
import threading
import zlib

import numpy as np

from swav_keras.data.source_info import ImageSourceInfo, array_stats

DATA_DIR_ENV = "SWAV_KERAS_DATA_DIR"
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
KERAS_DIR = os.path.join("~", ".keras", "datasets", "fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_PREFIXES = {"train": "train", "test": "t10k"}
_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.
_GZIP_MAGIC = b"\x1f\x8b"


def search_dirs(data_dir=None):
    """The folders `load_fashion_mnist` looks in, in order.

    `data_dir` (and its `fashion-mnist` subfolder) when given; else `$SWAV_KERAS_DATA_DIR` (and
    its `fashion-mnist` subfolder) when set, then `/usr/share/datasets/fashion-mnist`, then
    `~/.keras/datasets/fashion-mnist`.
    """
    if data_dir is not None:
        roots = [os.fspath(data_dir)]
    else:
        roots = [os.environ[DATA_DIR_ENV]] if os.environ.get(DATA_DIR_ENV) else []
    dirs = []
    for root in roots:
        root = os.path.expanduser(root)
        dirs += [root, os.path.join(root, "fashion-mnist")]
    if data_dir is None:
        dirs += [SYSTEM_DIR, os.path.expanduser(KERAS_DIR)]
    return dirs


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"Fashion-MNIST file {path} is not a readable gzip/idx file: {error}."
        ) from error
    return data


def read_idx(path, magic, item_shape):
    """Reads an idx file of unsigned bytes (gzipped or not) into a uint8 array.

    Args:
        path: the file.
        magic: expected magic number (2051 for images, 2049 for labels).
        item_shape: expected shape of one item, `(28, 28)` for images, `()` for labels.

    Returns:
        uint8 array `[count, *item_shape]`.

    Raises:
        ValueError: naming the file, when the magic number, the item shape or the size does not
            match the header (truncated or padded file), or the gzip stream is damaged.
    """
    data = _read(path)
    dims = len(item_shape) + 1
    header = 4 + 4 * dims
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise ValueError(
            f"Fashion-MNIST file {path} has magic number {found}, expected {magic}: "
            "not an idx file of this kind."
        )
    if len(data) < header:
        raise ValueError(f"Fashion-MNIST file {path} is truncated: {len(data)} bytes.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    if shape[1:] != tuple(item_shape):
        raise ValueError(
            f"Fashion-MNIST file {path} holds items of shape {shape[1:]}, expected {item_shape}."
        )
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"Fashion-MNIST file {path} holds {len(data) - header} bytes of data, but its "
            f"header announces {shape[0]} items ({expected} bytes): truncated or corrupt."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def network_available(host="storage.googleapis.com", port=443, timeout=3.0):
    """Whether `host:port` answers within `timeout` seconds (a thread bounds slow DNS too)."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _missing_message(split, dirs, reason):
    looked = "\n".join(f"  - {d}" for d in dirs)
    return (
        f"Fashion-MNIST ({split}) not found. Looked for {_PREFIXES[split]}-images-idx3-ubyte"
        f"[.gz] and {_PREFIXES[split]}-labels-idx1-ubyte[.gz] in:\n{looked}\n"
        f"and in tensorflow_datasets: {reason}\n"
        "Get the data with one of: `sudo apt-get install dataset-fashion-mnist` (installs "
        f"{SYSTEM_DIR}); the four idx files from https://github.com/zalandoresearch/"
        "fashion-mnist in a folder passed as `data_dir` (`--data_dir`) or set in "
        f"${DATA_DIR_ENV}; or an internet connection for `tensorflow_datasets`."
    )


def _from_tfds(split, data_dir, dirs):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise FileNotFoundError(_missing_message(split, dirs, "it is not installed.")) from None
    builder = tfds.builder("fashion_mnist", data_dir=data_dir)
    if not builder.is_prepared() and not network_available():
        reason = f"not prepared in {builder.data_dir} and no network to download it."
        raise FileNotFoundError(_missing_message(split, dirs, reason))
    images, labels = tfds.as_numpy(
        tfds.load("fashion_mnist", split=split, data_dir=data_dir, batch_size=-1,
                  as_supervised=True)
    )
    return images.astype(np.uint8), labels.astype(np.int64)


def load_fashion_mnist(split="train", data_dir=None):
    """Loads Fashion-MNIST as NumPy arrays, offline when the idx files are on disk.

    Looks for the idx files (gzipped or not) in the folders of `search_dirs(data_dir)`, the
    first folder holding both files of the split wins. When none does, falls back to
    `tensorflow_datasets` (already prepared in `data_dir`, or downloaded when the network
    answers).

    Args:
        split: `"train"` (60,000 images) or `"test"` (10,000). Defaults to `"train"`.
        data_dir: folder holding the idx files (or a `fashion-mnist` subfolder of it); also the
            `tensorflow_datasets` data folder of the fallback. Defaults to `None`: the
            standard places.

    Returns:
        `(images, labels)`: uint8 `[N, 28, 28, 1]` raw pixels 0..255, int64 `[N]` in 0..9.

    Raises:
        FileNotFoundError: no folder has the files and tfds cannot provide them; the message
            lists the places and how to get the data.
        ValueError: a bad `split`, or a damaged file (named in the message).

    Example: `images, labels = load_fashion_mnist("test")`.
    """
    if split not in _PREFIXES:
        raise ValueError(f"`split` must be 'train' or 'test'; received split={split!r}.")
    prefix = _PREFIXES[split]
    dirs = search_dirs(data_dir)
    for directory in dirs:
        image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
        label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
        if image_path and label_path:
            images = read_idx(image_path, _IMAGES_MAGIC, (28, 28))
            labels = read_idx(label_path, _LABELS_MAGIC, ())
            if len(images) != len(labels):
                raise ValueError(
                    f"Fashion-MNIST files {image_path} and {label_path} disagree: "
                    f"{len(images)} images but {len(labels)} labels."
                )
            if labels.size and labels.max() > 9:
                raise ValueError(
                    f"Fashion-MNIST file {label_path} holds label {labels.max()}, outside 0..9."
                )
            return images[..., None], labels.astype(np.int64)
    return _from_tfds(split, data_dir, dirs)


def fashion_mnist_arrays(split="train", data_dir=None):
    """Fashion-MNIST's `split` as `[N, 28, 28, 1]` uint8 images, int64 labels and its info.

    The statistics are those of the training split, whatever `split` is, as `load_images`'s.
    """
    images, labels = load_fashion_mnist(split, data_dir)
    train = images if split == "train" else load_fashion_mnist("train", data_dir)[0]
    mean, std = array_stats(train)
    info = ImageSourceInfo("fashion_mnist", split, len(images), 10, (28, 28, 1), mean, std,
                           CLASS_NAMES)
    return images, labels.astype(np.int64), info
