"""Golden tests of `swav_keras.swav_loss` against the float64 NumPy transcription."""

import keras
import ml_dtypes
import numpy as np
import numpy_reference as ref
import pytest
from autodiff import gradients

from swav_keras import swav_loss


def _crops(num_crops, batch, prototypes, seed=0, sharp=False):
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(num_crops):
        scores = rng.uniform(-1, 1, (batch, prototypes))
        if sharp:
            scores = 0.5 * scores + 0.45
            scores[np.arange(batch), rng.integers(0, prototypes, batch)] = 0.99
        crops.append(scores.astype("float32"))
    return crops


@pytest.mark.parametrize(
    "num_crops,batch,prototypes,crops_for_assign",
    [(2, 16, 10, (0, 1)), (6, 32, 30, (0, 1)), (8, 8, 100, (0, 1)), (4, 24, 12, (0,)),
     (5, 16, 20, (1, 3))],
)
@pytest.mark.parametrize("epsilon", [0.05, 0.01])
def test_matches_reference(num_crops, batch, prototypes, crops_for_assign, epsilon):
    crops = _crops(num_crops, batch, prototypes, sharp=epsilon == 0.01)
    loss = swav_loss(crops, crops_for_assign, temperature=0.1, epsilon=epsilon)
    expected = ref.swav_loss(crops, crops_for_assign, 0.1, epsilon, 3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("epsilon", [0.05, 0.01])
def test_with_queue_matches_reference(epsilon):
    crops = _crops(6, 16, 20, seed=1, sharp=True)
    queue = _crops(2, 64, 20, seed=2, sharp=True)
    loss = swav_loss(crops, (0, 1), 0.1, epsilon, 3, queue_scores=queue)
    expected = ref.swav_loss(crops, (0, 1), 0.1, epsilon, 3, queue_scores=queue)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-5)
    without = ref.swav_loss(crops, (0, 1), 0.1, epsilon, 3)
    assert abs(expected - without) > 1e-4  # the queue changes the codes


@pytest.mark.parametrize("temperature,iterations", [(0.1, 3), (0.2, 1), (0.05, 5)])
def test_temperature_and_iterations(temperature, iterations):
    crops = _crops(4, 16, 10, seed=3)
    loss = swav_loss(crops, temperature=temperature, sinkhorn_iterations=iterations)
    expected = ref.swav_loss(crops, (0, 1), temperature, 0.05, iterations)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_scores(dtype):
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    crops = [c.astype(np_dtype) for c in _crops(4, 16, 10, seed=4, sharp=True)]
    tensors = [keras.ops.convert_to_tensor(c, dtype=dtype) for c in crops]
    loss = swav_loss(tensors, epsilon=0.01)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    expected = ref.swav_loss([c.astype(np.float64) for c in crops], (0, 1), 0.1, 0.01, 3)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("with_queue", [False, True])
def test_gradient_matches_reference_and_skips_codes(with_queue):
    crops = _crops(4, 8, 6, seed=5)
    queue = _crops(2, 16, 6, seed=6) if with_queue else None

    def fn(tensors):
        return swav_loss(tensors, (0, 1), 0.1, 0.05, 3, queue_scores=queue)

    value, grads = gradients(fn, crops)
    np.testing.assert_allclose(value, ref.swav_loss(crops, queue_scores=queue), rtol=1e-5)
    expected = ref.swav_loss_gradient(crops, queue_scores=queue)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_loss_is_lowest_when_views_agree():
    rng = np.random.default_rng(7)
    base = rng.uniform(-1, 1, (32, 16)).astype("float32")
    agree = swav_loss([base, base, base, base])
    disagree = swav_loss([base] + [rng.uniform(-1, 1, (32, 16)).astype("float32")] * 3)
    assert float(agree) < float(disagree)


@pytest.mark.parametrize(
    "crops,kwargs,error,message",
    [
        (1, {}, ValueError, "SwAV needs at least 2 crops per image (a crop's codes are "
         "predicted from the others); received 1 crop(s)."),
        (4, {"crops_for_assign": (0, 4)}, ValueError, "`crops_for_assign` must hold crop "
         "indices in [0, 3] for 4 crops; received crops_for_assign=(0, 4)."),
        (4, {"crops_for_assign": (0, 0)}, ValueError, "`crops_for_assign` must not repeat a "
         "crop; received crops_for_assign=(0, 0)."),
        (4, {"crops_for_assign": ()}, ValueError, "`crops_for_assign` must hold at least 1 "
         "integer(s); received crops_for_assign=()."),
        (4, {"crops_for_assign": 0}, TypeError, "`crops_for_assign` must be a sequence of "
         "integers; received crops_for_assign=0."),
        (4, {"temperature": 0.0}, ValueError, "`temperature` must be a positive number; "
         "received temperature=0.0."),
        (4, {"epsilon": -1}, ValueError, "`epsilon` must be a positive number; received "
         "epsilon=-1."),
        (4, {"sinkhorn_iterations": 0}, ValueError, "`sinkhorn_iterations` must be a positive "
         "integer; received sinkhorn_iterations=0."),
        (4, {"queue_scores": [np.zeros((8, 5), "float32")]}, ValueError, "`queue_scores` must "
         "hold one [Q, K] tensor per entry of `crops_for_assign` (2); received 1 tensors."),
    ],
)
def test_errors(crops, kwargs, error, message):
    with pytest.raises(error) as info:
        swav_loss(_crops(crops, 8, 5), **kwargs)
    assert str(info.value) == message
