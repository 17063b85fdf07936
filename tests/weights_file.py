"""Test support: every array of a `.weights.h5` file (a backup), by its path in the file."""

import h5py


def arrays_of(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return arrays
