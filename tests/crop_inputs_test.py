"""Tests of the multi-crop input format: crop order, nesting, resolution groups, errors."""

import numpy as np
import pytest

from swav_keras.crop_inputs import check_batch_sizes, crops_as_list, natural_key, resolution_groups


def crops(sizes, batch=2):
    return [np.full((batch, s, s, 1), i, "float32") for i, s in enumerate(sizes)]


def test_tuple_list_and_dataset_element_give_the_same_crops():
    c = crops((8, 8, 4))
    for inputs in (tuple(c), c, (tuple(c),), [c]):
        out = crops_as_list(inputs)
        assert len(out) == 3 and all(a is b for a, b in zip(out, c))


def test_dict_keys_in_natural_order():
    c = crops((8,) * 12)
    shuffled = {f"crop_{i}": c[i] for i in np.random.default_rng(0).permutation(12)}
    out = crops_as_list(shuffled)
    assert [int(x[0, 0, 0, 0]) for x in out] == list(range(12))  # crop_2 before crop_10
    assert sorted(["b10", "b9", "a1"], key=natural_key) == ["a1", "b9", "b10"]


def test_resolution_groups_are_runs_of_equal_size():
    c = crops((8, 8, 4, 4, 4, 8))
    assert [len(g) for g in resolution_groups(c)] == [2, 3, 1]
    assert [len(g) for g in resolution_groups(crops((5, 5)))] == [2]
    rectangular = [np.zeros((2, 8, 6, 1)), np.zeros((2, 6, 8, 1)), np.zeros((2, 6, 8, 3))]
    assert [len(g) for g in resolution_groups(rectangular)] == [1, 1, 1]


def test_batch_size():
    assert check_batch_sizes(crops((8, 4), batch=5)) == 5

    class Unknown:
        shape = (None, 8, 8, 1)

    assert check_batch_sizes([Unknown(), Unknown()]) is None
    assert check_batch_sizes([Unknown(), crops((8,), batch=3)[0]]) == 3
    with pytest.raises(ValueError) as e:
        check_batch_sizes([np.zeros((4, 8, 8, 1)), np.zeros((4, 4, 4, 1)), np.zeros((3, 4, 4, 1))])
    assert str(e.value) == (
        "All crops must hold the same images, so the same batch size; received batch sizes "
        "[4, 4, 3] for crops 0..2."
    )


def test_errors():
    with pytest.raises(TypeError) as e:
        crops_as_list(np.zeros((2, 8, 8, 1)))
    assert str(e.value) == (
        "SwAV expects its input to be a tuple or dict of crops, one tensor per crop (each "
        "dataset element `((crop_0, ..., crop_n),)`); received <class 'numpy.ndarray'>."
    )
    with pytest.raises(ValueError) as e:
        crops_as_list((crops((8,))[0],))
    assert str(e.value) == (
        "SwAV needs at least 2 crops per image (a crop's codes are predicted from the others); "
        "received 1 crop(s)."
    )
    with pytest.raises(ValueError) as e:
        crops_as_list([np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8))])
    assert str(e.value) == (
        "Each crop must be a [batch, height, width, channels] tensor; crop 1 has shape "
        "(2, 8, 8)."
    )
