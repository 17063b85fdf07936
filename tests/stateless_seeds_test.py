"""`StatelessSeeds`: draws fixed by one seed tensor, different from draw to draw."""

import numpy as np
import tensorflow as tf

from swav_keras.augmentation.backend_ops import tensorflow_ops, uniform
from swav_keras.augmentation.stateless_seeds import StatelessSeeds


def draws(seed, count=3):
    with tensorflow_ops():  # TensorFlow's seeds and numbers, on every backend
        seeds = StatelessSeeds(tf.constant(seed))
        return [np.asarray(uniform((4,), seeds)) for _ in range(count)]


def test_the_same_seed_gives_the_same_draws_and_each_draw_differs():
    first, again = draws([3, 4]), draws([3, 4])
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], draws([3, 5])[0])


def test_int32_and_int64_seeds_draw_the_same():
    np.testing.assert_array_equal(draws(np.array([1, 2], "int32")),
                                  draws(np.array([1, 2], "int64")))
