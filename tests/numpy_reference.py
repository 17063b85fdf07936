"""Independent float64 NumPy transcriptions of SwAV's math, written from the paper's code.

These follow facebookresearch/swav `main_swav.py` line by line (plain exponentials, no log
domain, float64), so that the project's float32 log-domain implementation is checked against
a different computation of the same algorithm.
"""

import numpy as np


def sinkhorn(scores, epsilon=0.05, iterations=3):
    """`distributed_sinkhorn` on one device: Q = exp(scores / eps).T, normalise, iterate."""
    q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # K x B
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    q *= b
    return q.T


def _codes(out, queue_scores, j, epsilon, iterations):
    """Codes of one assignment crop; the queue (if any) is prepended, then dropped."""
    bs = out.shape[0]
    if queue_scores is not None:
        out = np.concatenate([np.asarray(queue_scores[j], np.float64), out])
    return sinkhorn(out, epsilon, iterations)[-bs:]


def log_softmax(x):
    x = np.asarray(x, np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def swav_loss(
    crop_scores,
    crops_for_assign=(0, 1),
    temperature=0.1,
    epsilon=0.05,
    iterations=3,
    queue_scores=None,
):
    """The training loop's loss: codes per assignment crop, swapped cross-entropy."""
    crop_scores = [np.asarray(s, np.float64) for s in crop_scores]
    num_crops = len(crop_scores)
    loss = 0.0
    for j, crop_id in enumerate(crops_for_assign):
        q = _codes(crop_scores[crop_id], queue_scores, j, epsilon, iterations)
        subloss = 0.0
        for v in np.delete(np.arange(num_crops), crop_id):
            x = crop_scores[v] / temperature
            subloss -= np.mean(np.sum(q * log_softmax(x), axis=1))
        loss += subloss / (num_crops - 1)
    return loss / len(crops_for_assign)


def swav_loss_gradient(
    crop_scores, crops_for_assign=(0, 1), temperature=0.1, epsilon=0.05, iterations=3,
    queue_scores=None,
):
    """d loss / d scores for each crop, with the codes held constant (no gradient through Q).

    For a predicting crop v of codes q: d/ds_v [-mean_b sum_k q log softmax(s_v / T)]
    = (softmax(s_v / T) * sum_k q - q) / (T * B).
    """
    crop_scores = [np.asarray(s, np.float64) for s in crop_scores]
    num_crops = len(crop_scores)
    grads = [np.zeros_like(s) for s in crop_scores]
    for j, crop_id in enumerate(crops_for_assign):
        q = _codes(crop_scores[crop_id], queue_scores, j, epsilon, iterations)
        bs = q.shape[0]
        for v in np.delete(np.arange(num_crops), crop_id):
            p = np.exp(log_softmax(crop_scores[v] / temperature))
            g = (p * q.sum(axis=1, keepdims=True) - q) / (temperature * bs)
            grads[v] += g / (num_crops - 1) / len(crops_for_assign)
    return grads
