"""The tokens of a Vision Transformer: position embeddings resized to each crop's patch grid,
and a class token put in front and read back out."""

import keras
from keras import ops

from swav_keras.validation import check_bool, check_int, check_int_sequence

INTERPOLATIONS = ("bicubic", "bilinear")


def check_interpolation(interpolation):
    """Returns `interpolation`, checking that it is one of `INTERPOLATIONS`."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {INTERPOLATIONS}; "
            f"received interpolation={interpolation!r}."
        )
    return interpolation


def resize_matrix(in_size, out_size, interpolation="bicubic"):
    """The `[out_size, in_size]` float32 matrix that resizes a signal of `in_size` samples.

    PyTorch's `F.interpolate(..., size=out_size, align_corners=False)` in matrix form: output
    sample `i` reads the input at `(i + 0.5) * in_size / out_size - 0.5`; `"bilinear"` weighs
    its two neighbours (positions below 0 read sample 0), `"bicubic"` its four with Keys's
    cubic kernel, `a = -0.75`; taps past an edge read the edge sample. Equal sizes give the
    identity. `out_size` may be a scalar tensor (a size known only at run time).

    Args:
        in_size: positive int, samples of the input.
        out_size: positive int or scalar int tensor, samples of the output.
        interpolation: `"bicubic"` or `"bilinear"`. Defaults to `"bicubic"`.

    Returns:
        A float32 tensor `[out_size, in_size]` whose rows sum to 1.

    Example:

    >>> import keras
    >>> from swav_keras.layers.position_embedding import resize_matrix
    >>> keras.ops.convert_to_numpy(resize_matrix(2, 4, "bilinear"))
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]], dtype=float32)
    """
    check_interpolation(interpolation)
    positions = ops.cast(ops.arange(out_size), "float32")
    scale = float(in_size) / ops.cast(out_size, "float32")
    source = (positions + 0.5) * scale - 0.5
    if interpolation == "bilinear":
        source = ops.maximum(source, 0.0)
        offsets = ops.convert_to_tensor([0.0, 1.0])
    else:
        offsets = ops.convert_to_tensor([-1.0, 0.0, 1.0, 2.0])
    taps = ops.floor(source)[:, None] + offsets[None, :]  # [out, taps]
    distance = ops.abs(source[:, None] - taps)
    if interpolation == "bilinear":
        weights = ops.maximum(1.0 - distance, 0.0)
    else:
        a = -0.75
        near = ((a + 2.0) * distance - (a + 3.0)) * distance * distance + 1.0
        far = ((a * distance - 5.0 * a) * distance + 8.0 * a) * distance - 4.0 * a
        weights = ops.where(distance <= 1.0, near, ops.where(distance < 2.0, far, 0.0))
    index = ops.cast(ops.clip(taps, 0.0, float(in_size - 1)), "int32")
    one_hot = ops.one_hot(index, in_size, dtype="float32")  # [out, taps, in]
    return ops.sum(weights[:, :, None] * one_hot, axis=1)


def interpolate_grid(embedding, height, width, interpolation="bicubic"):
    """Resizes a `[grid_height, grid_width, channels]` embedding to `[height, width, channels]`.

    Separable: `resize_matrix` along rows, then along columns (what PyTorch's bilinear and
    bicubic `F.interpolate` compute). Computed in float32.

    Args:
        embedding: tensor `[grid_height, grid_width, channels]` with known grid sizes.
        height: positive int or scalar int tensor, rows of the result.
        width: positive int or scalar int tensor, columns of the result.
        interpolation: `"bicubic"` or `"bilinear"`. Defaults to `"bicubic"`.

    Returns:
        A float32 tensor `[height, width, channels]`.
    """
    rows = resize_matrix(embedding.shape[0], height, interpolation)
    cols = resize_matrix(embedding.shape[1], width, interpolation)
    return ops.einsum("hi,ijc,wj->hwc", rows, ops.cast(embedding, "float32"), cols)


@keras.saving.register_keras_serializable(package="swav_keras")
class InterpolatedPositionEmbedding(keras.layers.Layer):
    """Turns a grid of patch embeddings into tokens with position embeddings of any grid size.

    A Vision Transformer learns one position embedding per patch of a reference grid (e.g.
    14x14 for 224-pixel images and 16-pixel patches). SwAV's multi-crop feeds the same
    encoder crops of several sizes (2x224 and 6x96 pixels, grids of 14x14 and 6x6): as DINO's
    `interpolate_pos_encoding`, this layer resizes the learned grid to each input's grid when
    it is called (`interpolate_grid`, bicubic by default), adds it, flattens the grid row by
    row and, with `class_token`, puts a learned class token (with its own position
    embedding, never resized) in front. At the reference grid the embedding is used as it is.
    `swav_keras.backbones.VisionTransformer` builds its tokens with it.

    Input `[B, H, W, C]` (any `H`, `W`; `C` known); output `[B, H * W, C]`, or
    `[B, 1 + H * W, C]` with `class_token`, the class token first.

    Args:
        grid_size: positive int, or `(rows, columns)`, the reference grid whose embeddings are
            learned. Defaults to `14`.
        class_token: bool, whether to put a learned class token in front of the patches.
            Defaults to `True`.
        interpolation: `"bicubic"` or `"bilinear"`, how the grid is resized. Defaults to
            `"bicubic"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...).

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import InterpolatedPositionEmbedding
    >>> layer = InterpolatedPositionEmbedding(grid_size=4)
    >>> tuple(layer(np.zeros((2, 4, 4, 8), "float32")).shape)
    (2, 17, 8)
    >>> tuple(layer(np.zeros((2, 2, 3, 8), "float32")).shape)
    (2, 7, 8)

    Reference:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
        Recognition at Scale", ICLR 2021. Caron et al., "Emerging Properties in
        Self-Supervised Vision Transformers" (DINO), ICCV 2021.
    """

    def __init__(self, grid_size=14, class_token=True, interpolation="bicubic", **kwargs):
        super().__init__(**kwargs)
        if isinstance(grid_size, (list, tuple)):
            grid = check_int_sequence("grid_size", grid_size, minimum=1)
            if len(grid) != 2:
                raise ValueError(
                    "`grid_size` must be a positive integer or a pair of them; "
                    f"received grid_size={grid_size!r}."
                )
        else:
            grid = (check_int("grid_size", grid_size, minimum=1),) * 2
        self.grid_size = grid
        self.class_token = check_bool("class_token", class_token)
        self.interpolation = check_interpolation(interpolation)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "InterpolatedPositionEmbedding takes patch grids [batch, height, width, "
                f"channels] with known channels; received inputs of shape {tuple(input_shape)}."
            )
        channels = input_shape[-1]
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.position_embedding = self.add_weight(
            (*self.grid_size, channels), initializer=init, name="position_embedding"
        )
        if self.class_token:
            self.class_embedding = self.add_weight((channels,), initializer=init,
                                                   name="class_token")
            self.class_position = self.add_weight((channels,), initializer=init,
                                                  name="class_position")

    def call(self, inputs):
        height = inputs.shape[1] or ops.shape(inputs)[1]
        width = inputs.shape[2] or ops.shape(inputs)[2]
        channels = inputs.shape[-1]
        if isinstance(height, int) and isinstance(width, int) and (
            (height, width) == self.grid_size
        ):
            positions = ops.cast(self.position_embedding, "float32")
        else:
            positions = interpolate_grid(self.position_embedding, height, width,
                                         self.interpolation)
        tokens = inputs + ops.cast(positions, inputs.dtype)[None]
        tokens = ops.reshape(tokens, (ops.shape(inputs)[0], -1, channels))
        if not self.class_token:
            return tokens
        first = ops.cast(self.class_embedding + self.class_position, inputs.dtype)
        first = ops.broadcast_to(first[None, None, :], (ops.shape(inputs)[0], 1, channels))
        return ops.concatenate([first, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        tokens = None if height is None or width is None else height * width
        if tokens is not None and self.class_token:
            tokens += 1
        return (batch, tokens, channels)

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": self.grid_size,
            "class_token": self.class_token,
            "interpolation": self.interpolation,
        }


@keras.saving.register_keras_serializable(package="swav_keras")
class ClassTokenPooling(keras.layers.Layer):
    """Keeps the first token of `[batch, tokens, channels]`: the class token that
    `InterpolatedPositionEmbedding(class_token=True)` put in front, after the transformer.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import ClassTokenPooling
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> [float(v) for v in ClassTokenPooling()(tokens)[0]]
    [0.0, 1.0, 2.0, 3.0]
    """

    def call(self, tokens):
        return tokens[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
