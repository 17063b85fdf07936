"""SwAV's projection head: (Linear -> BatchNorm -> ReLU) x hidden_layers -> Linear."""

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

    `hidden_layers` stacks more `Linear(hidden) -> BatchNorm -> ReLU` blocks before the output
    layer, as SimCLR v2 and DINO do, so that the head rather than the encoder's last stage
    absorbs more of the pretext task. Whether it pays depends on the data and budget: on
    Fashion-MNIST at 10 epochs two blocks scored lower than one (`benchmarks/RESULTS.md`). The
    first block's layers keep the names `hidden`, `batchnorm` and `relu` whatever the depth,
    the next ones are `hidden_2`, `batchnorm_2`, `relu_2`, ...; a one-block head loads the
    weights it saved before this argument existed.

    Args:
        hidden_dim: int >= 0, width of the hidden layers; 0 gives a linear head.
            Defaults to `2048`.
        output_dim: positive int, the embedding dimension. Defaults to `128`.
        batchnorm_momentum: float in [0, 1), Keras momentum of the hidden BatchNorms.
            Defaults to `0.9`.
        batchnorm_epsilon: positive float. Defaults to `1e-5`.
        sync_batchnorm: bool, use `SyncBatchNormalization` (statistics over the global batch
            when training on several replicas). Defaults to `False`.
        hidden_layers: positive int, the number of hidden blocks when `hidden_dim > 0`
            (it must stay 1 with `hidden_dim=0`). Defaults to `1`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import ProjectionHead
    >>> head = ProjectionHead(hidden_dim=32, output_dim=8)
    >>> tuple(head(np.zeros((4, 16), "float32")).shape)
    (4, 8)
    >>> deeper = ProjectionHead(hidden_dim=32, output_dim=8, hidden_layers=3)
    >>> tuple(deeper(np.zeros((4, 16), "float32")).shape)
    (4, 8)

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020. Deeper heads: Chen et al., "Big Self-Supervised Models
        are Strong Semi-Supervised Learners", NeurIPS 2020 (SimCLR v2).
    """

    def __init__(
        self,
        hidden_dim=2048,
        output_dim=128,
        batchnorm_momentum=0.9,
        batchnorm_epsilon=1e-5,
        sync_batchnorm=False,
        hidden_layers=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, minimum=0)
        self.hidden_layers = check_int("hidden_layers", hidden_layers, minimum=1)
        if not self.hidden_dim and self.hidden_layers != 1:
            raise ValueError(
                "`hidden_layers` must be 1 when `hidden_dim=0` (a linear head has no hidden "
                f"block); received hidden_layers={hidden_layers!r}."
            )
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
        # Blocks 2, 3, ... as a flat list [Dense, BatchNorm, ReLU, Dense, ...]; block 1 keeps
        # its attributes (and so its place in saved weights).
        self.deeper_layers = []
        if self.hidden_dim:
            self.hidden, self.batchnorm, self.activation = self._block("")
            for index in range(2, self.hidden_layers + 1):
                self.deeper_layers.extend(self._block(f"_{index}"))
        self.output_layer = keras.layers.Dense(
            self.output_dim, dtype=self.dtype_policy, name="output"
        )

    def _block(self, suffix):
        batchnorm = SyncBatchNormalization if self.sync_batchnorm else (
            keras.layers.BatchNormalization)
        return (
            keras.layers.Dense(self.hidden_dim, dtype=self.dtype_policy, name="hidden" + suffix),
            batchnorm(
                momentum=self.batchnorm_momentum,
                epsilon=self.batchnorm_epsilon,
                dtype=self.dtype_policy,
                name="batchnorm" + suffix,
            ),
            keras.layers.ReLU(dtype=self.dtype_policy, name="relu" + suffix),
        )

    def _blocks(self):
        if self.hidden is None:
            return []
        blocks = [(self.hidden, self.batchnorm, self.activation)]
        layers = self.deeper_layers
        return blocks + [tuple(layers[i:i + 3]) for i in range(0, len(layers), 3)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, batchnorm, _ in self._blocks():
            dense.build(shape)
            shape = shape[:-1] + (self.hidden_dim,)
            batchnorm.build(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, batchnorm, activation in self._blocks():
            x = activation(batchnorm(dense(x), training=training))
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
                "hidden_layers": self.hidden_layers,
            }
        )
        return config
