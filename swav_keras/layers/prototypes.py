"""SwAV's prototypes: a bias-free linear layer whose K weight vectors stay at unit norm."""

import keras
from keras import ops

from swav_keras.validation import check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class UnitNormalInitializer(keras.initializers.Initializer):
    """Random directions: standard normal columns scaled to unit L2 norm (along axis 0).

    Used for the prototypes so that they start on the unit sphere, as the original normalises
    them before the first forward pass.

    Args:
        seed: optional int seed. Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import UnitNormalInitializer
    >>> columns = np.asarray(UnitNormalInitializer(seed=0)((8, 3)))
    >>> np.allclose(np.linalg.norm(columns, axis=0), 1.0, atol=1e-6)
    True
    """

    def __init__(self, seed=None):
        self.seed = seed
        self._normal = keras.initializers.RandomNormal(stddev=1.0, seed=seed)

    def __call__(self, shape, dtype=None):
        values = self._normal(shape, dtype="float32")
        values = values / ops.sqrt(ops.sum(ops.square(values), axis=0, keepdims=True))
        return ops.cast(values, dtype or "float32")

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="swav_keras")
class Prototypes(keras.layers.Layer):
    """Scores of L2-normalised embeddings against K learnable unit-norm prototypes.

    The kernel is a `[dim, K]` matrix whose columns are the prototypes. They are initialised on
    the unit sphere and projected back onto it by a `UnitNorm` constraint after every optimizer
    step (the original renormalises them before every forward pass, which is equivalent), so
    with normalised embeddings the scores are cosine similarities in [-1, 1].

    The original freezes the prototypes for the first iterations of training. `call` takes an
    optional boolean scalar `frozen`: while it is true no gradient reaches the kernel
    (`stop_gradient`), which works on every backend, under `jit` too.

    Args:
        num_prototypes: positive int, K, the number of prototypes (clusters).
            Defaults to `3000`.
        kernel_initializer: initializer of the `[dim, K]` kernel.
            Defaults to `UnitNormalInitializer()`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import Prototypes
    >>> layer = Prototypes(num_prototypes=10)
    >>> tuple(layer(np.ones((2, 4), "float32") / 2).shape)
    (2, 10)

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """

    def __init__(self, num_prototypes=3000, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_prototypes = check_int("num_prototypes", num_prototypes, minimum=1)
        if kernel_initializer is None:
            kernel_initializer = UnitNormalInitializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.num_prototypes),
            initializer=self.kernel_initializer,
            constraint=keras.constraints.UnitNorm(axis=0),
        )

    def call(self, inputs, frozen=None):
        kernel = ops.cast(self.kernel, self.compute_dtype)
        if frozen is not None:
            kernel = ops.where(frozen, ops.stop_gradient(kernel), kernel)
        return ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.num_prototypes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_prototypes": self.num_prototypes,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
