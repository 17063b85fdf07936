"""The multi-crop input that `SwAV` takes: V crops of the same images, grouped by resolution.

A training element holds the crops as a tuple, `((crop_0, ..., crop_{V-1}),)` as
`swav_keras.data.multicrop_dataset` yields them, or as a dict whose keys sort in natural order
(`crop_2` before `crop_10`). Crops of the same spatial size that follow each other form one
resolution group: the encoder runs once per group on their concatenation, as the original's
ResNet `forward` does with `torch.unique_consecutive` over the crop sizes (Caron et al., 2020,
facebookresearch/swav `src/resnet50.py`).
"""

import re


def crops_as_list(inputs):
    """The crops of a SwAV input as a list, high-resolution crops first.

    Args:
        inputs: a tuple or list of `[B, H, W, C]` tensors, one per crop, possibly wrapped in a
            one-element tuple (a dataset element `((crop_0, ..., crop_n),)`), or a dict of
            crops taken in the natural order of its keys.

    Returns:
        A list of the crops, at least 2.

    Raises:
        TypeError: `inputs` is not a tuple, list or dict.
        ValueError: fewer than 2 crops, or a crop that is not a rank-4 tensor.

    Example:

    >>> import numpy as np
    >>> from swav_keras.crop_inputs import crops_as_list
    >>> crops = {f"crop_{i}": np.full((1, 2, 2, 1), i) for i in (10, 2, 1)}
    >>> [int(crop[0, 0, 0, 0]) for crop in crops_as_list(crops)]
    [1, 2, 10]
    """
    if isinstance(inputs, dict):
        crops = [inputs[k] for k in sorted(inputs, key=natural_key)]
    elif isinstance(inputs, (list, tuple)):
        crops = list(inputs)
        if len(crops) == 1 and isinstance(crops[0], (list, tuple, dict)):
            return crops_as_list(crops[0])
    else:
        raise TypeError(
            "SwAV expects its input to be a tuple or dict of crops, one tensor per crop "
            f"(each dataset element `((crop_0, ..., crop_n),)`); received {type(inputs)}."
        )
    if len(crops) < 2:
        raise ValueError(
            "SwAV needs at least 2 crops per image (a crop's codes are predicted from the "
            f"others); received {len(crops)} crop(s)."
        )
    for i, crop in enumerate(crops):
        if len(crop.shape) != 4:
            raise ValueError(
                f"Each crop must be a [batch, height, width, channels] tensor; crop {i} has "
                f"shape {tuple(crop.shape)}."
            )
    return crops


def check_batch_sizes(crops):
    """Checks that every crop holds the same number of images; returns it (or `None`).

    Raises:
        ValueError: two crops with different static batch sizes.
    """
    sizes = [c.shape[0] for c in crops]
    known = [s for s in sizes if s is not None]
    if len(set(known)) > 1:
        raise ValueError(
            "All crops must hold the same images, so the same batch size; received batch "
            f"sizes {sizes} for crops 0..{len(sizes) - 1}."
        )
    return known[0] if known else None


def resolution_groups(crops):
    """Splits crops into runs of consecutive crops with the same spatial size.

    Example:

    >>> import numpy as np
    >>> from swav_keras.crop_inputs import resolution_groups
    >>> crops = [np.zeros((1, size, size, 3)) for size in (224, 224, 96, 96, 96)]
    >>> [len(group) for group in resolution_groups(crops)]
    [2, 3]
    """
    groups = []
    for crop in crops:
        if groups and tuple(groups[-1][0].shape[1:]) == tuple(crop.shape[1:]):
            groups[-1].append(crop)
        else:
            groups.append([crop])
    return groups


def natural_key(key):
    """Sort key that orders the digits in a name by value: `crop_2` before `crop_10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(key))]
