"""Tests of `swav_keras.visualization.plot_multicrops` (PNG written and read back)."""

import matplotlib.image
import numpy as np
import pytest

from swav_keras.visualization.multicrops import plot_multicrops

# The layout in pixels (100 dpi): left margin 0.75 in, header 0.45 in, cells 1.1 in + 0.08 in.
_LEFT, _TOP, _CELL, _GAP = 75, 45, 110, 8


def _crops(channels=1, batch=3):
    """Crop 0: 28x28 mid-gray for image 0, black for image 1; crop 1: 14x14 mid-gray."""
    global_crop = np.full((batch, 28, 28, channels), 128.0, "float32")
    global_crop[1] = 0.0
    local_crop = np.full((batch, 14, 14, channels), 128.0, "float32")
    return (global_crop, local_crop)


def _read(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    return image[..., :3]


def test_writes_a_png_with_one_row_per_image(tmp_path):
    path = plot_multicrops(_crops(), str(tmp_path / "sub" / "crops.png"), num_images=2)
    assert path == str(tmp_path / "sub" / "crops.png")
    image = _read(path)
    # 2 crops wide, 2 images high.
    assert image.shape[:2] == (_TOP + 2 * (_CELL + _GAP) + 10, _LEFT + 2 * (_CELL + _GAP) + 10)
    centre = _LEFT + _CELL // 2
    # Fixed 0..255 range, no per-image stretch: 128 is mid-gray, 0 black.
    np.testing.assert_allclose(image[_TOP + _CELL // 2, centre], 128 / 255, atol=0.01)
    np.testing.assert_allclose(image[_TOP + _CELL + _GAP + _CELL // 2, centre], 0.0, atol=0.01)


@pytest.mark.parametrize("same_size", [False, True])
def test_local_crops_at_their_own_size_or_scaled(tmp_path, same_size):
    path = plot_multicrops(_crops(), str(tmp_path / "crops.png"), same_size=same_size)
    image = _read(path)
    cell_x = _LEFT + _CELL + _GAP  # the 14x14 crop's cell
    row_y = _TOP + _CELL // 2
    np.testing.assert_allclose(image[row_y, cell_x + _CELL // 2], 128 / 255, atol=0.01)
    corner = image[_TOP + 8, cell_x + 8]  # inside the cell, outside a half-size crop
    if same_size:
        np.testing.assert_allclose(corner, 128 / 255, atol=0.01)
    else:
        np.testing.assert_allclose(corner, 1.0, atol=0.01)  # white page


def test_rgb_and_dataset_element(tmp_path):
    crops = list(_crops(channels=3, batch=2))
    crops[0][0, ..., 0] = 255.0  # image 0, crop 0: pure-ish red channel on
    element = (tuple(crops),)  # as `multicrop_dataset` yields it
    image = _read(plot_multicrops(element, str(tmp_path / "rgb.png"), title="RGB"))
    assert image.shape[0] == _TOP + 30 + 2 * (_CELL + _GAP) + 10  # title adds 0.3 in
    np.testing.assert_allclose(
        image[_TOP + 30 + _CELL // 2, _LEFT + _CELL // 2], [1.0, 128 / 255, 128 / 255], atol=0.01
    )


def _error(*args, **kwargs):
    with pytest.raises((ValueError, TypeError)) as info:
        plot_multicrops(*args, **kwargs)
    return str(info.value)


def test_errors(tmp_path):
    path = str(tmp_path / "x.png")
    global_crop, local_crop = _crops()
    assert _error((global_crop, local_crop[:, :, :, 0]), path) == (
        "`crops[1]` must be a 4-D array [N, H, W, C] with 1 or 3 channels and N >= 1; "
        "received crops[1].shape=(3, 14, 14)."
    )
    assert _error((np.zeros((3, 8, 8, 2)),), path) == (
        "`crops[0]` must be a 4-D array [N, H, W, C] with 1 or 3 channels and N >= 1; "
        "received crops[0].shape=(3, 8, 8, 2)."
    )
    assert _error((global_crop, local_crop[:2]), path) == (
        "`crops[1]` must hold as many images as `crops[0]` (3); received len(crops[1])=2."
    )
    assert _error(global_crop, path) == (
        "`crops` must be a non-empty sequence of arrays [B, H, W, C]; "
        "received crops of type ndarray."
    )
    assert _error((global_crop,), path, num_images=0) == (
        "`num_images` must be a positive integer; received num_images=0."
    )
    assert _error((global_crop,), path, value_range=(1, 1)) == (
        "`value_range` must be a pair (low, high) with low < high; received value_range=(1, 1)."
    )
