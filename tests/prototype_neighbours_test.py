"""Tests of `swav_keras.visualization.plot_prototype_neighbours` (PNG written and read back)."""

import matplotlib.image
import numpy as np
import pytest

from swav_keras.visualization.prototype_neighbours import plot_prototype_neighbours

# Layout at 100 dpi: labels 1.1 in, cells 0.9 in, rows 0.9 + 0.22 in, margins 0.15 / 0.1 in.
_FIRST_X = 110 + 45  # centre of the first image of a row
_ROW_Y = (63, 175)  # centres of the images of rows 0 and 1


def _data():
    """Three prototypes on the axes; 6 bright images near prototype 2, 3 dark ones near 0 and
    1 mid-gray one near 1 (similarities 0.99 .. 0.95 so the order is known)."""
    prototypes = np.eye(3)
    gray = [250.0] * 6 + [10.0] * 3 + [128.0]
    nearest = [2] * 6 + [0] * 3 + [1]
    rng = np.random.default_rng(0)
    embeddings = np.eye(3)[nearest] + 0.05 * rng.uniform(size=(10, 3))
    images = np.ones((10, 6, 6, 1), "float32") * np.array(gray, "float32")[:, None, None, None]
    return images, embeddings, prototypes


def _read(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    return image[..., :3]


def test_rows_follow_assignment_counts(tmp_path):
    images, embeddings, prototypes = _data()
    path = plot_prototype_neighbours(
        images, embeddings, prototypes, str(tmp_path / "p.png"), num_prototypes=2, neighbours=3
    )
    image = _read(path)
    assert image.shape[:2] == (15 + 2 * 112 + 10, 110 + 3 * 90 + 10)
    # Most used: prototype 2 (6 images, bright), then prototype 0 (3 images, dark).
    np.testing.assert_allclose(image[_ROW_Y[0], _FIRST_X], 250 / 255, atol=0.01)
    np.testing.assert_allclose(image[_ROW_Y[1], _FIRST_X], 10 / 255, atol=0.01)


def test_given_counts_rank_the_rows(tmp_path):
    images, embeddings, prototypes = _data()
    labels = np.arange(10) % 3
    path = plot_prototype_neighbours(
        images,
        embeddings,
        prototypes,
        str(tmp_path / "p.png"),
        num_prototypes=2,
        neighbours=2,
        counts=np.array([0, 50, 7]),
        labels=labels,
        class_names=["a", "b", "c"],
    )
    image = _read(path)
    np.testing.assert_allclose(image[_ROW_Y[0], _FIRST_X], 128 / 255, atol=0.01)  # prototype 1
    np.testing.assert_allclose(image[_ROW_Y[1], _FIRST_X], 250 / 255, atol=0.01)  # prototype 2


def _error(**overrides):
    images, embeddings, prototypes = _data()
    kwargs = dict(
        images=images,
        embeddings=embeddings,
        prototypes=prototypes,
        path="/nonexistent/never_written.png",
        num_prototypes=2,
        neighbours=2,
    )
    kwargs.update(overrides)
    with pytest.raises((ValueError, TypeError)) as info:
        plot_prototype_neighbours(**kwargs)
    return str(info.value)


def test_errors():
    assert _error(images=np.zeros((10, 6, 6))) == (
        "`images` must be a 4-D array [N, H, W, C] with 1 or 3 channels and N >= 1; "
        "received images.shape=(10, 6, 6)."
    )
    assert _error(embeddings=np.zeros((9, 3))) == (
        "`embeddings` must hold one row per image (10); received embeddings.shape=(9, 3)."
    )
    assert _error(embeddings=np.zeros(10)) == (
        "`embeddings` must be a 2-D array [N, D]; received embeddings.shape=(10,)."
    )
    bad = np.eye(3)
    bad[1, 2] = np.nan
    assert _error(prototypes=bad) == (
        "`prototypes` must hold only finite values; received prototypes[1, 2]=nan."
    )
    assert _error(prototypes=np.zeros((3, 4))) == (
        "`prototypes` must be [K, D] with D = 3, the embeddings' size (a Prototypes kernel "
        "[D, K] must be transposed); received prototypes.shape=(3, 4)."
    )
    assert _error(counts=np.ones(4)) == (
        "`counts` must be an array [K] with K = 3 (one per prototype); received counts.shape=(4,)."
    )
    assert _error(counts=np.array([1.0, -2.0, 0.0])) == (
        "`counts` must hold non-negative finite numbers; received counts[1]=-2.0."
    )
    assert _error(num_prototypes=4) == (
        "`num_prototypes` must be <= the number of prototypes (3); received num_prototypes=4."
    )
    assert _error(neighbours=11) == (
        "`neighbours` must be <= the number of images (10); received neighbours=11."
    )
    assert _error(neighbours=0) == "`neighbours` must be a positive integer; received neighbours=0."
    assert _error(labels=np.zeros(9, "int64")) == (
        "`labels` must hold one label per image (10); received labels.shape=(9,)."
    )
