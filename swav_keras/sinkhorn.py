"""Sinkhorn-Knopp equal-partition codes, computed in float32 in the log domain."""

import math

from keras import ops

from swav_keras import backends
from swav_keras.validation import check_float, check_int


def sinkhorn(scores, epsilon=0.05, iterations=3, all_reduce_sum=None, all_reduce_max=None):
    """Soft assignments of samples to prototypes with equal prototype usage (SwAV's codes).

    SwAV turns the scores of a batch against the prototypes into codes `Q` by a few
    Sinkhorn-Knopp iterations on `exp(scores / epsilon)`: each prototype receives `1/K` of
    the batch's mass, each sample `1/B`, and the result is scaled by `B` so that every code
    sums to 1. The equal partition prevents the trivial solution (every sample on one
    prototype). It computes in float32 in the log domain whatever the input dtype, so the codes
    stay finite for any `epsilon` under mixed precision; no gradient flows through them.

    Args:
        scores: `[B, K]` tensor of sample-prototype scores (cosine similarities in SwAV), any
            float dtype (float16 and bfloat16 included).
        epsilon: positive float, the entropic regularisation; smaller gives sharper codes.
            Defaults to `0.05`.
        iterations: positive int, the number of Sinkhorn-Knopp iterations.
            Defaults to `3`.
        all_reduce_sum: callable turning a per-replica tensor into its sum over replicas;
            `None` uses the active backend adapter's (the identity on one device).
            Defaults to `None`.
        all_reduce_max: callable giving the element-wise maximum over replicas; `None` uses
            the active backend adapter's. Defaults to `None`.

    Returns:
        float32 `[B, K]` codes; each row sums to 1 and, over the global batch, each column
        sums to `B/K` (up to the last column normalisation).

    Example:

    >>> import numpy as np
    >>> from swav_keras import sinkhorn
    >>> scores = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype("float32")
    >>> codes = sinkhorn(scores, epsilon=0.05, iterations=3)
    >>> np.allclose(np.asarray(codes).sum(axis=1), 1.0, atol=1e-5)
    True

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020 (`distributed_sinkhorn` in facebookresearch/swav).
    """
    epsilon, iterations = _check_sinkhorn_args(epsilon, iterations)
    scores = ops.convert_to_tensor(scores)
    if len(scores.shape) != 2:
        raise ValueError(
            "`scores` must be a 2-D [batch, prototypes] tensor; "
            f"received shape {tuple(scores.shape)}."
        )
    # Across replicas only O(K) values per iteration are reduced (the per-prototype sums, and
    # one maximum at the start); per-sample sums stay local, as in the original.
    adapter = None
    if all_reduce_sum is None or all_reduce_max is None:
        adapter = backends.active()
    all_reduce_sum = all_reduce_sum or adapter.all_reduce_sum
    all_reduce_max = all_reduce_max or adapter.all_reduce_max

    # float32 log domain: exp(scores / epsilon) overflows float32 at epsilon=0.01, and one
    # global shift would flush the small entries to zero; logsumexp per axis keeps ~1e-6.
    logits = ops.stop_gradient(ops.cast(scores, "float32")) / epsilon
    num_prototypes = logits.shape[1]
    log_k = math.log(num_prototypes)
    local_batch = ops.cast(ops.shape(logits)[0], "float32")
    log_b = ops.log(all_reduce_sum(local_batch))

    # Per-prototype normalisation of exp(logits): shift each prototype by its global maximum
    # over the batch, which cancels in the normalisation and keeps every exp() in (0, 1].
    # (The original first divides by the grand total; the next normalisation cancels it.)
    shift = ops.stop_gradient(all_reduce_max(ops.max(logits, axis=0)))
    mass = all_reduce_sum(ops.sum(ops.exp(logits - shift), axis=0))
    log_q = logits - (shift + ops.log(mass) + log_k)
    log_q = _normalise_samples(log_q, log_b)
    for _ in range(iterations - 1):
        # After a sample normalisation every entry is <= 1/B and each prototype's total lies
        # in [1/(K*B), 1]: the plain sum of exp() is exact in float32, no shift needed.
        mass = all_reduce_sum(ops.sum(ops.exp(log_q), axis=0))
        log_q = log_q - (ops.log(mass) + log_k)
        log_q = _normalise_samples(log_q, log_b)
    return ops.stop_gradient(ops.exp(log_q + log_b))


def _normalise_samples(log_q, log_b):
    """Makes each sample's (row's) total 1/B; local to the replica, no communication."""
    return log_q - (ops.logsumexp(log_q, axis=1, keepdims=True) + log_b)


def _check_sinkhorn_args(epsilon, iterations):
    return (
        check_float("epsilon", epsilon, positive=True),
        check_int("iterations", iterations, minimum=1),
    )
