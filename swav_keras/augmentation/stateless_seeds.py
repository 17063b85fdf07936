"""A `keras.random.SeedGenerator` without state, for code that must not share one (tf.data)."""

import keras

from swav_keras.augmentation.backend_ops import ops

# Seeds `steps` apart differ by `steps * _STRIDE` in their key half: two streams of seeds meet
# only if their own seeds differ by a multiple of it.
_STRIDE = 65537


def moved_key(seed, steps):
    """`seed` (shape `[2]`, int) with `steps * 65537` added to its key half: another stream."""
    key = ops.cast(steps, seed.dtype) * _STRIDE
    return seed + ops.stack([key, ops.zeros_like(key)])


class StatelessSeeds(keras.random.SeedGenerator):
    """The seeds of successive draws, computed from one seed tensor instead of a state.

    A `SeedGenerator` keeps its state in a variable, which the parallel calls of a `tf.data`
    map would share (and advance in any order). This one holds a shape-`[2]` int seed, e.g. one
    per batch, and its n-th `next()` is a fixed function of that seed and n, so the same seed
    gives the same draws whatever the parallelism. `swav_keras.data.MultiCrop` passes one per
    batch and group to the augmentation's functions, with TensorFlow seeds inside
    `backend_ops.tensorflow_ops()`.

    Args:
        seed: shape-`[2]` int tensor.
    """

    def __init__(self, seed):  # no super().__init__(): no state, no variable
        self.name, self.backend, self.state = "stateless_seeds", None, None
        self.seed, self.draws = seed, 0

    def next(self, ordered=True):
        del ordered
        self.draws += 1
        return moved_key(self.seed, self.draws)
