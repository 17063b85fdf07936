"""SwAV's learning-rate schedule: linear warmup, then cosine decay, as Keras's `CosineDecay`."""

import keras

from swav_keras.validation import check_float, check_int


def warmup_cosine_decay(
    base_learning_rate,
    final_learning_rate,
    total_steps,
    warmup_steps=0,
    warmup_start_learning_rate=0.0,
):
    """Returns the paper's schedule: linear warmup to `base`, cosine decay to `final`.

    SwAV (`main_swav.py`) warms the learning rate up linearly from `warmup_start` to `base`
    over the warmup steps, then decays it over the remaining `T = total_steps - warmup_steps`
    steps as `final + 0.5 * (base - final) * (1 + cos(pi * t / T))`. That is Keras's own
    `keras.optimizers.schedules.CosineDecay(initial_learning_rate=warmup_start,
    decay_steps=T, alpha=final / base, warmup_target=base, warmup_steps=warmup_steps)`,
    which this function builds after checking the arguments, so the schedule serialises with
    the optimizer as a plain Keras object.

    The cosine part is identical to the original step by step. The warmup differs by one step:
    the original uses `np.linspace(warmup_start, base, warmup_steps)`, which reaches `base` at
    its last warmup step (`t / (warmup_steps - 1)`), while Keras ramps as
    `t / warmup_steps` and reaches `base` at the first cosine step; during warmup the two
    differ by at most `(base - warmup_start) / warmup_steps`. After `total_steps` Keras holds
    `final` (the original has no steps there). With `warmup_steps=0` there is no warmup and
    `warmup_start_learning_rate` is unused.

    Args:
        base_learning_rate: positive float, the rate at the end of warmup (the paper's 4.8 at
            batch 4096).
        final_learning_rate: float in [0, base_learning_rate], the rate reached at
            `total_steps` (the paper's 0.0048).
        total_steps: positive int, warmup plus decay steps (epochs x steps per epoch).
        warmup_steps: int in [0, total_steps), linear warmup steps. Defaults to `0`.
        warmup_start_learning_rate: float >= 0, the rate at step 0 of the warmup.
            Defaults to `0.0`.

    Returns:
        A `keras.optimizers.schedules.CosineDecay`, to pass as `learning_rate` to an optimizer.

    Example:

    >>> from swav_keras.optimizers import warmup_cosine_decay
    >>> schedule = warmup_cosine_decay(4.8, 0.0048, total_steps=1000, warmup_steps=100)
    >>> round(float(schedule(100)), 4), round(float(schedule(1000)), 4)
    (4.8, 0.0048)

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """
    base = check_float("base_learning_rate", base_learning_rate, positive=True)
    final = check_float("final_learning_rate", final_learning_rate, minimum=0.0)
    if final > base:
        raise ValueError(
            f"`final_learning_rate` must be <= base_learning_rate ({base}); "
            f"received final_learning_rate={final_learning_rate!r}."
        )
    total_steps = check_int("total_steps", total_steps, minimum=1)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_steps` must be < total_steps ({total_steps}); "
            f"received warmup_steps={warmup_steps!r}."
        )
    start = check_float("warmup_start_learning_rate", warmup_start_learning_rate, minimum=0.0)
    if warmup_steps == 0:
        # No warmup branch at all: CosineDecay's warmup would divide by warmup_steps = 0.
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=base, decay_steps=total_steps, alpha=final / base
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=start,
        decay_steps=total_steps - warmup_steps,
        alpha=final / base,
        warmup_target=base,
        warmup_steps=warmup_steps,
    )
