"""SwAV's swapped prediction loss, as functions of the per-crop prototype scores."""

from keras import ops

from swav_keras.sinkhorn import sinkhorn
from swav_keras.validation import check_float, check_int, check_int_sequence


def assignment_codes(
    scores,
    queue_scores=None,
    epsilon=0.05,
    sinkhorn_iterations=3,
    all_reduce_sum=None,
    all_reduce_max=None,
):
    """Sinkhorn codes of one assignment crop, optionally computed together with a queue.

    With a queue, the queued scores are prepended to the batch scores so that the equal
    partition is enforced over `Q + B` samples, and only the batch's rows are returned: this
    is what makes SwAV work with small batches (the original's `torch.cat((queue @ C.T,
    out))` followed by `[-bs:]`).

    Args:
        scores: `[B, K]` scores of the crop's batch.
        queue_scores: optional `[Q, K]` scores of the queued embeddings. Defaults to `None`.
        epsilon: Sinkhorn's entropic regularisation. Defaults to `0.05`.
        sinkhorn_iterations: number of Sinkhorn-Knopp iterations. Defaults to `3`.
        all_reduce_sum: cross-replica sum hook for `sinkhorn`. Defaults to `None`.
        all_reduce_max: cross-replica max hook for `sinkhorn`. Defaults to `None`.

    Returns:
        float32 `[B, K]` codes with no gradient.

    Example:

    >>> import numpy as np
    >>> from swav_keras import assignment_codes
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.uniform(-1, 1, (4, 3)).astype("float32")
    >>> queued = rng.uniform(-1, 1, (12, 3)).astype("float32")
    >>> tuple(assignment_codes(scores, queued).shape)  # the batch's rows only
    (4, 3)
    """
    if queue_scores is None:
        return sinkhorn(scores, epsilon, sinkhorn_iterations, all_reduce_sum, all_reduce_max)
    batch = ops.shape(scores)[0]
    joint = ops.concatenate(
        [ops.cast(queue_scores, "float32"), ops.cast(scores, "float32")], axis=0
    )
    codes = sinkhorn(joint, epsilon, sinkhorn_iterations, all_reduce_sum, all_reduce_max)
    return codes[-batch:]


def swapped_prediction(crop_scores, codes, crops_for_assign=(0, 1), temperature=0.1):
    """Cross-entropy between each assignment crop's codes and every other crop's prediction.

    For each crop `i` in `crops_for_assign` and every other crop `v`, low-resolution ones
    included: `-mean_b sum_k codes_i[b, k] * log_softmax(scores_v / temperature)[b, k]`,
    summed over `v`, divided by `num_crops - 1`, then averaged over `crops_for_assign`.

    Args:
        crop_scores: sequence of `[B, K]` scores, one per crop, high-resolution crops first.
        codes: sequence of `[B, K]` codes, one per entry of `crops_for_assign`.
        crops_for_assign: indices of the crops whose codes are predicted.
            Defaults to `(0, 1)`.
        temperature: positive float dividing the scores before the softmax.
            Defaults to `0.1`.

    Returns:
        A float32 scalar.

    Example:

    >>> import numpy as np
    >>> from swav_keras import sinkhorn, swapped_prediction
    >>> rng = np.random.default_rng(0)
    >>> scores = [rng.uniform(-1, 1, (4, 3)).astype("float32") for _ in range(3)]
    >>> codes = [sinkhorn(scores[0]), sinkhorn(scores[1])]
    >>> float(swapped_prediction(scores, codes)) > 0  # a cross-entropy
    True
    """
    num_crops = len(crop_scores)
    log_probs = [
        ops.log_softmax(ops.cast(scores, "float32") / temperature, axis=-1)
        for scores in crop_scores
    ]
    total = 0.0
    for assign_index, crop_id in enumerate(crops_for_assign):
        q = ops.stop_gradient(ops.cast(codes[assign_index], "float32"))
        subloss = 0.0
        for view in range(num_crops):
            if view == crop_id:
                continue
            subloss = subloss - ops.mean(ops.sum(q * log_probs[view], axis=-1))
        total = total + subloss / (num_crops - 1)
    return total / len(crops_for_assign)


def swav_loss(
    crop_scores,
    crops_for_assign=(0, 1),
    temperature=0.1,
    epsilon=0.05,
    sinkhorn_iterations=3,
    queue_scores=None,
    all_reduce_sum=None,
    all_reduce_max=None,
):
    """SwAV's swapped prediction loss on the prototype scores of a multi-crop batch.

    Codes are computed with Sinkhorn-Knopp for each crop in `crops_for_assign` (no gradient),
    and predicted from every other crop's scores through a softmax at `temperature`. Because
    one crop's codes are predicted from another crop of the same image, the features must
    carry what is common to the views, and the equal-partition codes keep the prototypes in use.

    Args:
        crop_scores: sequence of `[B, K]` score tensors, one per crop, high-resolution crops
            first (scores are cosine similarities of normalised embeddings and prototypes).
        crops_for_assign: indices of the crops whose codes are predicted.
            Defaults to `(0, 1)`.
        temperature: positive float, the softmax temperature of the predictions.
            Defaults to `0.1`.
        epsilon: positive float, Sinkhorn's entropic regularisation. Defaults to `0.05`.
        sinkhorn_iterations: positive int, number of Sinkhorn-Knopp iterations.
            Defaults to `3`.
        queue_scores: optional sequence with one `[Q, K]` score tensor per assignment crop,
            the scores of queued embeddings against the current prototypes.
            Defaults to `None`.
        all_reduce_sum: cross-replica sum hook for `sinkhorn`; `None` uses the active
            backend adapter's. Defaults to `None`.
        all_reduce_max: cross-replica max hook for `sinkhorn`; `None` uses the active
            backend adapter's. Defaults to `None`.

    Returns:
        A float32 scalar.

    Example:

    >>> import numpy as np
    >>> from swav_keras import swav_loss
    >>> rng = np.random.default_rng(0)
    >>> crops = [rng.uniform(-1, 1, (16, 10)).astype("float32") for _ in range(4)]
    >>> float(swav_loss(crops, crops_for_assign=(0, 1))) > 0
    True

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """
    crop_scores = list(crop_scores)
    crops_for_assign = check_crops_for_assign(crops_for_assign, len(crop_scores))
    temperature = check_float("temperature", temperature, positive=True)
    epsilon = check_float("epsilon", epsilon, positive=True)
    sinkhorn_iterations = check_int("sinkhorn_iterations", sinkhorn_iterations, minimum=1)
    if queue_scores is not None:
        queue_scores = list(queue_scores)
        if len(queue_scores) != len(crops_for_assign):
            raise ValueError(
                "`queue_scores` must hold one [Q, K] tensor per entry of `crops_for_assign` "
                f"({len(crops_for_assign)}); received {len(queue_scores)} tensors."
            )
    codes = [
        assignment_codes(
            crop_scores[crop_id],
            None if queue_scores is None else queue_scores[j],
            epsilon,
            sinkhorn_iterations,
            all_reduce_sum,
            all_reduce_max,
        )
        for j, crop_id in enumerate(crops_for_assign)
    ]
    return swapped_prediction(crop_scores, codes, crops_for_assign, temperature)


def check_crops_for_assign(crops_for_assign, num_crops):
    """Validates `crops_for_assign` against the number of crops; returns it as a tuple."""
    if isinstance(num_crops, bool) or num_crops < 2:
        raise ValueError(
            "SwAV needs at least 2 crops per image (a crop's codes are predicted from the "
            f"others); received {num_crops} crop(s)."
        )
    crops_for_assign = check_int_sequence("crops_for_assign", crops_for_assign)
    for crop_id in crops_for_assign:
        if not 0 <= crop_id < num_crops:
            raise ValueError(
                f"`crops_for_assign` must hold crop indices in [0, {num_crops - 1}] for "
                f"{num_crops} crops; received crops_for_assign={crops_for_assign!r}."
            )
    if len(set(crops_for_assign)) != len(crops_for_assign):
        raise ValueError(
            "`crops_for_assign` must not repeat a crop; "
            f"received crops_for_assign={crops_for_assign!r}."
        )
    return crops_for_assign
