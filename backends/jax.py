"""JAX adapter: under `keras.distribution.DataParallel` (GSPMD) batch sums are already global.

With GSPMD the loss sees globally sharded arrays, so `ops.sum` over the batch axis is the
global sum and XLA inserts the collectives itself: the reductions here are the identity.
"""


def all_reduce_sum(x):
    """The identity: GSPMD already makes batch sums global."""
    return x


def differentiable_all_reduce_sum(x):
    """The identity: GSPMD already makes batch sums global, gradients included."""
    return x


def all_reduce_max(x):
    """The identity: GSPMD already makes batch maxima global."""
    return x


def synchronize_gradients(variables):
    """Nothing to do: under GSPMD the gradients of the global loss are already global."""
    del variables


def num_replicas():
    """One logical replica: the program is written for the global batch."""
    return 1


def gradient_scale():
    """Gradients of the global loss are already global: no scaling."""
    return 1.0
