"""Reproducible training: the same command twice gives the same weights."""

from swav_keras import backends


def enable_determinism():
    """Makes training on this machine reproducible run to run, on the active backend.

    With the same seed (`keras.utils.set_random_seed`), the same data order and the same
    crops (the pipelines of `swav_keras.data` are seeded), two runs of one program on one
    backend and machine then give equal weights: TensorFlow gets op determinism and one
    inter-op thread, PyTorch `torch.use_deterministic_algorithms(True)`, JAX XLA's
    deterministic GPU kernels (JAX and PyTorch on CPU are deterministic already). It costs
    step time (the results page has the figures) and settles nothing across backends or
    machines. Call it first, before the backend runs anything: the thread pools and XLA
    flags are read when the backend starts, and a late call warns that it is too late.

    Example:

    ```python
    import keras
    import swav_keras

    swav_keras.enable_determinism()
    keras.utils.set_random_seed(0)
    ```
    """
    backends.active().enable_determinism()
