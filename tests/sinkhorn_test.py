"""Golden and invariant tests of `swav_keras.sinkhorn`, run under every backend."""

import threading

import keras
import ml_dtypes
import numpy as np
import numpy_reference as ref
import pytest
from autodiff import gradients

from swav_keras import sinkhorn


def _scores(batch, prototypes, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.uniform(-1, 1, (batch, prototypes)).astype("float32")
    # A trained model's scores: every sample close to one prototype (cosine near 1),
    # others spread below; some prototypes far from every sample.
    scores = rng.uniform(0.3, 0.9, (batch, prototypes))
    scores[np.arange(batch), rng.integers(0, prototypes, batch)] = rng.uniform(0.97, 1.0, batch)
    scores[:, : max(1, prototypes // 10)] -= 1.0
    return scores.astype("float32")


@pytest.mark.parametrize("batch,prototypes", [(8, 4), (64, 30), (256, 128), (32, 300)])
@pytest.mark.parametrize("epsilon", [0.05, 0.01])
@pytest.mark.parametrize("kind", ["uniform", "trained"])
def test_matches_float64_reference(batch, prototypes, epsilon, kind):
    scores = _scores(batch, prototypes, kind)
    codes = keras.ops.convert_to_numpy(sinkhorn(scores, epsilon=epsilon, iterations=3))
    assert codes.dtype == np.float32
    assert codes.shape == (batch, prototypes)
    np.testing.assert_allclose(codes, ref.sinkhorn(scores, epsilon, 3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("iterations", [1, 2, 5, 10])
def test_iterations_match_reference(iterations):
    scores = _scores(48, 20, "trained", seed=3)
    codes = keras.ops.convert_to_numpy(sinkhorn(scores, 0.03, iterations))
    np.testing.assert_allclose(codes, ref.sinkhorn(scores, 0.03, iterations), atol=1e-5)


def test_naive_float32_would_fail_here():
    # The case the log domain exists for: exp(score / 0.01) overflows float32.
    scores = _scores(64, 30, "trained")
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.exp(scores / 0.01)))
    codes = keras.ops.convert_to_numpy(sinkhorn(scores, epsilon=0.01))
    assert np.all(np.isfinite(codes))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("epsilon", [0.05, 0.01])
def test_low_precision_inputs_are_computed_in_float32(dtype, epsilon):
    scores = _scores(64, 30, "trained", seed=1)
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    rounded = scores.astype(np_dtype)
    codes = sinkhorn(keras.ops.convert_to_tensor(rounded, dtype=dtype), epsilon=epsilon)
    codes = keras.ops.convert_to_numpy(codes)
    assert codes.dtype == np.float32
    assert np.all(np.isfinite(codes))
    # Equal to the float64 codes of the same (rounded) scores.
    np.testing.assert_allclose(
        codes, ref.sinkhorn(rounded.astype(np.float64), epsilon, 3), atol=1e-5
    )
    # And to float32 codes of the same scores.
    codes32 = keras.ops.convert_to_numpy(sinkhorn(rounded.astype(np.float32), epsilon=epsilon))
    np.testing.assert_allclose(codes, codes32, atol=1e-6)


def test_rows_sum_to_one_and_prototypes_share_equally():
    scores = _scores(60, 12, "uniform", seed=2)
    codes = keras.ops.convert_to_numpy(sinkhorn(scores, epsilon=0.1, iterations=3))
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(codes >= 0)
    # With enough iterations the prototype totals converge to B / K.
    codes = keras.ops.convert_to_numpy(sinkhorn(scores, epsilon=0.1, iterations=200))
    np.testing.assert_allclose(codes.sum(axis=0), 60 / 12, rtol=1e-3)


def test_no_gradient_flows_through_codes():
    scores = _scores(16, 8, "uniform", seed=4)
    weights = np.random.default_rng(5).normal(size=(16, 8)).astype("float32")

    def fn(tensors):
        return keras.ops.sum(sinkhorn(tensors[0]) * weights)

    value, (grad,) = gradients(fn, [scores])
    np.testing.assert_allclose(value, np.sum(ref.sinkhorn(scores) * weights), rtol=1e-4)
    assert np.all(grad == 0)


class _ThreadAllReduce:
    """Simulates `replicas` devices with threads: each call blocks until all have arrived."""

    def __init__(self, replicas, op):
        self.replicas, self.op = replicas, op
        self.barrier = threading.Barrier(replicas)
        self.values = [None] * replicas
        self.shapes = []
        self.local = threading.local()

    def __call__(self, x):
        value = keras.ops.convert_to_numpy(x)
        self.values[self.local.rank] = value
        self.barrier.wait()
        result = self.op(np.stack(self.values), axis=0)
        if self.local.rank == 0:
            self.shapes.append(value.shape)
        self.barrier.wait()
        return keras.ops.convert_to_tensor(result)


@pytest.mark.parametrize("epsilon", [0.05, 0.01])
def test_global_sums_across_replicas_equal_one_device(epsilon):
    replicas, per_replica, prototypes = 2, 24, 16
    scores = _scores(replicas * per_replica, prototypes, "trained", seed=6)
    total = _ThreadAllReduce(replicas, np.sum)
    maximum = _ThreadAllReduce(replicas, np.max)
    results = [None] * replicas
    errors = []

    def replica(rank):
        try:
            total.local.rank = maximum.local.rank = rank
            shard = scores[rank * per_replica : (rank + 1) * per_replica]
            codes = sinkhorn(shard, epsilon, 3, all_reduce_sum=total, all_reduce_max=maximum)
            results[rank] = keras.ops.convert_to_numpy(codes)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
            total.barrier.abort()
            maximum.barrier.abort()

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    global_codes = np.concatenate(results)
    np.testing.assert_allclose(global_codes, ref.sinkhorn(scores, epsilon, 3), atol=1e-5)
    # Per-replica Sinkhorn (no reduction) gives different codes: the test can fail.
    local = np.concatenate(
        [
            keras.ops.convert_to_numpy(sinkhorn(scores[:per_replica], epsilon)),
            keras.ops.convert_to_numpy(sinkhorn(scores[per_replica:], epsilon)),
        ]
    )
    assert np.abs(local - global_codes).max() > 1e-3
    # Only O(K) values cross devices: the batch size, then per-prototype vectors.
    assert all(int(np.prod(shape)) in (1, prototypes) for shape in total.shapes + maximum.shapes)
    assert len(total.shapes) == 1 + 3  # batch size + one per iteration
    assert maximum.shapes == [(prototypes,)]


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"epsilon": 0}, ValueError, "`epsilon` must be a positive number; received epsilon=0."),
        ({"epsilon": -0.1}, ValueError, "received epsilon=-0.1."),
        ({"epsilon": "a"}, TypeError, "`epsilon` must be a number; received epsilon='a'."),
        (
            {"iterations": 0},
            ValueError,
            "`iterations` must be a positive integer; received iterations=0.",
        ),
        (
            {"iterations": 2.5},
            TypeError,
            "`iterations` must be an integer; received iterations=2.5.",
        ),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        sinkhorn(np.zeros((4, 3), "float32"), **kwargs)
    assert message in str(info.value)


def test_bad_rank():
    with pytest.raises(ValueError) as info:
        sinkhorn(np.zeros((4, 3, 2), "float32"))
    assert str(info.value) == (
        "`scores` must be a 2-D [batch, prototypes] tensor; received shape (4, 3, 2)."
    )
