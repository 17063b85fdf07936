"""`warmup_cosine_decay` against a NumPy transcription of `main_swav.py`'s per-step schedule."""

import math

import keras
import numpy as np
import pytest

from swav_keras.optimizers.schedules import warmup_cosine_decay


def original_schedule(base, final, total_steps, warmup_steps, start):
    """facebookresearch/swav `main_swav.py`, with iterations in place of epochs x loader length."""
    warmup = np.linspace(start, base, warmup_steps)
    iters = np.arange(total_steps - warmup_steps)
    cosine = np.array(
        [
            final
            + 0.5 * (base - final) * (1 + math.cos(math.pi * t / (total_steps - warmup_steps)))
            for t in iters
        ]
    )
    return np.concatenate((warmup, cosine))


def keras_warmup(base, warmup_steps, start):
    """The documented difference: Keras ramps as t / warmup_steps (linspace: t / (W - 1))."""
    return start + (base - start) * np.arange(warmup_steps) / warmup_steps


def _values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(step))) for step in steps])


@pytest.mark.parametrize(
    "base,final,total_steps,warmup_steps,start",
    [
        (4.8, 0.0048, 50, 10, 0.0),  # the paper's rates
        (0.6, 0.0006, 40, 5, 0.3),  # warmup from a non-zero rate
        (0.5, 0.0, 30, 0, 0.0),  # no warmup
        (1.0, 1.0, 12, 3, 0.0),  # constant after warmup (alpha = 1)
    ],
)
def test_matches_original_schedule(base, final, total_steps, warmup_steps, start):
    schedule = warmup_cosine_decay(base, final, total_steps, warmup_steps, start)
    got = _values(schedule, range(total_steps))
    want = original_schedule(base, final, total_steps, warmup_steps, start)
    # The cosine part is the original's, step for step.
    np.testing.assert_allclose(got[warmup_steps:], want[warmup_steps:], rtol=1e-6, atol=1e-7)
    # The warmup ramps to `base` one step later than linspace does, and differs by no more
    # than (base - start) / warmup_steps.
    np.testing.assert_allclose(
        got[:warmup_steps], keras_warmup(base, warmup_steps, start), rtol=1e-6
    )
    if warmup_steps:
        assert got[0] == pytest.approx(start)
        gap = np.abs(got[:warmup_steps] - want[:warmup_steps]).max()
        assert gap <= (base - start) / warmup_steps + 1e-6
    # After the last step Keras holds `final`.
    assert _values(schedule, [total_steps, 10 * total_steps]) == pytest.approx([final] * 2)


def test_is_a_serialisable_keras_cosine_decay():
    schedule = warmup_cosine_decay(4.8, 0.0048, total_steps=100, warmup_steps=10)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    steps = [0, 5, 10, 50, 99]
    np.testing.assert_allclose(_values(restored, steps), _values(schedule, steps), rtol=1e-7)


def test_follows_optimizer_iterations():
    schedule = warmup_cosine_decay(1.0, 0.1, total_steps=10, warmup_steps=4)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(np.zeros((2,), "float32"))
    seen = []
    for _ in range(6):
        seen.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        optimizer.apply([keras.ops.ones((2,))], [variable])
    np.testing.assert_allclose(seen, _values(schedule, range(6)), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (
            {"base_learning_rate": 0.0},
            ValueError,
            "`base_learning_rate` must be a positive number; received base_learning_rate=0.0.",
        ),
        (
            {"final_learning_rate": -0.1},
            ValueError,
            "`final_learning_rate` must be >= 0.0; received final_learning_rate=-0.1.",
        ),
        (
            {"final_learning_rate": 2.0},
            ValueError,
            "`final_learning_rate` must be <= base_learning_rate (1.0); "
            "received final_learning_rate=2.0.",
        ),
        (
            {"total_steps": 0},
            ValueError,
            "`total_steps` must be a positive integer; received total_steps=0.",
        ),
        (
            {"total_steps": 10.0},
            TypeError,
            "`total_steps` must be an integer; received total_steps=10.0.",
        ),
        (
            {"warmup_steps": -1},
            ValueError,
            "`warmup_steps` must be an integer >= 0; received warmup_steps=-1.",
        ),
        (
            {"warmup_steps": 10},
            ValueError,
            "`warmup_steps` must be < total_steps (10); received warmup_steps=10.",
        ),
        (
            {"warmup_start_learning_rate": -1.0},
            ValueError,
            "`warmup_start_learning_rate` must be >= 0.0; "
            "received warmup_start_learning_rate=-1.0.",
        ),
    ],
)
def test_error_messages(kwargs, error, message):
    arguments = dict(base_learning_rate=1.0, final_learning_rate=0.0, total_steps=10)
    arguments.update(kwargs)
    with pytest.raises(error) as info:
        warmup_cosine_decay(**arguments)
    assert str(info.value) == message
