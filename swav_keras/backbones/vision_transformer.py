"""The Vision Transformer encoder (ViT), for crops of any size."""

import keras

from swav_keras.backbones.small_resnet import check_input_shape, input_normalization
from swav_keras.layers.position_embedding import (
    ClassTokenPooling,
    InterpolatedPositionEmbedding,
)
from swav_keras.validation import check_float, check_int

VIT_POOLINGS = ("token", "mean")


def _check_image_size(image_size, patch_size):
    """`image_size` as `(rows, columns)`, each a multiple of `patch_size`."""
    sizes = image_size if isinstance(image_size, (list, tuple)) else (image_size, image_size)
    if len(sizes) != 2 or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= patch_size
        and size % patch_size == 0 for size in sizes
    ):
        raise ValueError(
            f"`image_size` must be a multiple of `patch_size` ({patch_size}), or a pair of "
            f"them; received image_size={image_size!r}."
        )
    return tuple(sizes)


def check_vit_shape(patch_size, width, depth, num_heads, mlp_ratio):
    """Returns `VisionTransformer`'s shape arguments checked, in that order."""
    patch_size = check_int("patch_size", patch_size, minimum=1)
    width = check_int("width", width, minimum=1)
    depth = check_int("depth", depth, minimum=1)
    num_heads = check_int("num_heads", num_heads, minimum=1)
    if width % num_heads:
        raise ValueError(
            f"`width` must be a multiple of `num_heads`; received width={width}, "
            f"num_heads={num_heads}."
        )
    mlp_ratio = check_float("mlp_ratio", mlp_ratio, positive=True)
    return patch_size, width, depth, num_heads, mlp_ratio


def VisionTransformer(
    patch_size=16,
    width=384,
    depth=12,
    num_heads=6,
    mlp_ratio=4.0,
    image_size=224,
    input_shape=(None, None, 3),
    mean=None,
    std=None,
    pooling="token",
    interpolation="bicubic",
    name="vision_transformer",
):
    """Builds a Vision Transformer encoder: images of any size to `width` pooled features.

    The ViT of DINO and of SwAV's ViT experiments, from Keras layers: a `patch_size` x
    `patch_size` stride-`patch_size` `Conv2D` embeds each patch in `width` channels, an
    `InterpolatedPositionEmbedding` adds learned position embeddings (learned for the patch
    grid of `image_size`-pixel images and resized, bicubic by default, to the grid of each
    input, as DINO's `interpolate_pos_encoding`: SwAV's multi-crop passes crops of two sizes,
    2x224 and 6x96 pixels, through the same encoder), then `depth` pre-norm blocks
    (`LayerNormalization`, `MultiHeadAttention`, residual; `LayerNormalization`, MLP of
    `mlp_ratio * width` GELU units, residual) and a final `LayerNormalization`.
    `pooling="token"` prepends a learned class token and returns it; `pooling="mean"`, the
    mean of the patch tokens (no class token). Defaults are ViT-S/16 (21.7M parameters).

    A fixed `input_shape` must be a multiple of `patch_size`. With `None` sizes the model takes
    any size, and, like the patch `Conv2D` of DINO and timm, ignores the last rows and columns
    that do not fill a patch (a 30-pixel crop with 16-pixel patches is read as 16 pixels).
    An input smaller than one patch has no patch token (with `pooling="mean"`, NaN features).

    With `mean` and `std`, the first layer is a `keras.layers.Normalization` computing
    `(x - mean) / std` per channel: the model, and a `.keras` file saved from it, take raw
    pixels (e.g. 0-255). The `.keras` file needs `swav_keras` imported to load (custom layers).

    Args:
        patch_size: positive int, side of the square patches in pixels. Defaults to `16`.
        width: positive int, channels of every token, a multiple of `num_heads`; the number
            of features. Defaults to `384`.
        depth: positive int, transformer blocks. Defaults to `12`.
        num_heads: positive int, attention heads of every block. Defaults to `6`.
        mlp_ratio: positive number, hidden units of each MLP per channel. Defaults to `4.0`.
        image_size: int, or `(rows, columns)`, multiples of `patch_size`: the image size whose
            patch grid the position embeddings are learned for. Defaults to `224`.
        input_shape: `(height, width, channels)`, channels-last; height and width may be `None`
            to accept any size. Defaults to `(None, None, 3)`.
        mean: per-channel means (one number per channel) in the pixel scale of the inputs, or
            `None` for no normalisation layer. Defaults to `None`.
        std: per-channel standard deviations, positive, given with `mean`. Defaults to `None`.
        pooling: `"token"` (the class token) or `"mean"` (mean of the patch tokens).
            Defaults to `"token"`.
        interpolation: `"bicubic"` or `"bilinear"`, how the position embeddings are resized.
            Defaults to `"bicubic"`.
        name: name of the model. Defaults to `"vision_transformer"`.

    Returns:
        A functional `keras.Model` mapping images `[batch, height, width, channels]` to features
        `[batch, width]`.

    Example:

    >>> import numpy as np
    >>> from swav_keras.backbones import VisionTransformer
    >>> encoder = VisionTransformer(patch_size=7, width=16, depth=1, num_heads=2,
    ...                             image_size=28, input_shape=(None, None, 1))
    >>> encoder.output_shape
    (None, 16)
    >>> tuple(encoder(np.zeros((2, 14, 14, 1), "float32")).shape)
    (2, 16)

    Reference:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
        Recognition at Scale", ICLR 2021. Caron et al., "Emerging Properties in
        Self-Supervised Vision Transformers" (DINO), ICCV 2021.
    """
    patch_size, width, depth, num_heads, mlp_ratio = check_vit_shape(
        patch_size, width, depth, num_heads, mlp_ratio)
    image_size = _check_image_size(image_size, patch_size)
    if pooling not in VIT_POOLINGS:
        raise ValueError(f"`pooling` must be one of {VIT_POOLINGS}; received pooling={pooling!r}.")
    input_shape = check_input_shape(input_shape)
    for side in input_shape[:2]:
        if side is not None and side % patch_size:
            raise ValueError(
                f"`input_shape` must have a height and width that are multiples of "
                f"`patch_size` ({patch_size}), or None; received input_shape={input_shape!r}."
            )
    normalization = input_normalization(mean, std, input_shape[-1])
    dense_init = keras.initializers.TruncatedNormal(stddev=0.02)

    inputs = keras.Input(input_shape, name="input")
    x = inputs if normalization is None else normalization(inputs)
    x = keras.layers.Conv2D(width, patch_size, strides=patch_size, padding="valid",
                            data_format="channels_last", kernel_initializer=dense_init,
                            name="patch_embedding")(x)
    x = InterpolatedPositionEmbedding(
        (image_size[0] // patch_size, image_size[1] // patch_size),
        class_token=pooling == "token", interpolation=interpolation, name="position_embedding",
    )(x)
    hidden = max(1, int(round(mlp_ratio * width)))
    for block in range(depth):
        prefix = f"block{block + 1}"
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=prefix + "_norm1")(x)
        y = keras.layers.MultiHeadAttention(
            num_heads, width // num_heads, kernel_initializer=dense_init,
            name=prefix + "_attention",
        )(y, y)
        x = keras.layers.Add(name=prefix + "_add1")([x, y])
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=prefix + "_norm2")(x)
        y = keras.layers.Dense(hidden, activation="gelu", kernel_initializer=dense_init,
                               name=prefix + "_mlp1")(y)
        y = keras.layers.Dense(width, kernel_initializer=dense_init, name=prefix + "_mlp2")(y)
        x = keras.layers.Add(name=prefix + "_add2")([x, y])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    if pooling == "token":
        outputs = ClassTokenPooling(name="token_pool")(x)
    else:
        outputs = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    return keras.Model(inputs, outputs, name=name)
