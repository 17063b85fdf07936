"""SwAV's projection head: Linear -> BatchNorm -> ReLU -> Linear."""

import keras

from swav_keras.layers.sync_batch_normalization import SyncBatchNormalization
from swav_keras.validation import check_float, check_int


@keras.saving.register_keras_serializable(package="swav_keras")
class ProjectionHead(keras.layers.Layer):
    """Maps backbone features to the embedding space where prototypes live.

    The original SwAV head is `Linear(hidden) -> BatchNorm -> ReLU -> Linear(output)` on the
    pooled backbone features; with `hidden_dim=0` it is a single linear layer. The embeddings
    are L2-normalised afterwards (see `L2Normalize`). BatchNorm uses PyTorch's defaults
    (momentum 0.1 in PyTorch terms, i.e. `momentum=0.9` here, `epsilon=1e-5`).

    Args:
        hidden_dim: int >= 0, width of the hidden layer; 0 gives a linear head.
            Defaults to `2048`.
        output_dim: positive int, the embedding dimension. Defaults to `128`.
        batchnorm_momentum: float in [0, 1), Keras momentum of the hidden BatchNorm.
            Defaults to `0.9`.
        batchnorm_epsilon: positive float. Defaults to `1e-5`.
        sync_batchnorm: bool, use `SyncBatchNormalization` (statistics over the global batch
            when training on several replicas). Defaults to `False`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> head = ProjectionHead(hidden_dim=32, output_dim=8)
    >>> head(np.zeros((4, 16), "float32")).shape
    (4, 8)

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """

    def __init__(
        self,
        hidden_dim=2048,
        output_dim=128,
        batchnorm_momentum=0.9,
        batchnorm_epsilon=1e-5,
        sync_batchnorm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, minimum=0)
        self.output_dim = check_int("output_dim", output_dim, minimum=1)
        self.batchnorm_momentum = check_float(
            "batchnorm_momentum", batchnorm_momentum, minimum=0.0, maximum=1.0
        )
        self.batchnorm_epsilon = check_float("batchnorm_epsilon", batchnorm_epsilon, positive=True)
        if not isinstance(sync_batchnorm, bool):
            raise TypeError(
                f"`sync_batchnorm` must be a bool; received sync_batchnorm={sync_batchnorm!r}."
            )
        self.sync_batchnorm = sync_batchnorm
        self.hidden = None
        if self.hidden_dim:
            self.hidden = keras.layers.Dense(
                self.hidden_dim, dtype=self.dtype_policy, name="hidden"
            )
            batchnorm = keras.layers.BatchNormalization
            if sync_batchnorm:
                batchnorm = SyncBatchNormalization
            self.batchnorm = batchnorm(
                momentum=self.batchnorm_momentum,
                epsilon=self.batchnorm_epsilon,
                dtype=self.dtype_policy,
                name="batchnorm",
            )
            self.activation = keras.layers.ReLU(dtype=self.dtype_policy, name="relu")
        self.output_layer = keras.layers.Dense(
            self.output_dim, dtype=self.dtype_policy, name="output"
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = shape[:-1] + (self.hidden_dim,)
            self.batchnorm.build(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.hidden is not None:
            x = self.hidden(x)
            x = self.batchnorm(x, training=training)
            x = self.activation(x)
        return self.output_layer(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "output_dim": self.output_dim,
                "batchnorm_momentum": self.batchnorm_momentum,
                "batchnorm_epsilon": self.batchnorm_epsilon,
                "sync_batchnorm": self.sync_batchnorm,
            }
        )
        return config
