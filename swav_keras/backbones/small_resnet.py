"""The small ResNet: a ResNet-18 layout for small images (CIFAR-style 3x3 stem, no max-pool)."""

import numbers

import keras

from swav_keras.layers.corner_average_pooling import CornerAveragePooling2D
from swav_keras.layers.grid_average_pooling import GridAveragePooling2D
from swav_keras.validation import check_int


def check_input_shape(input_shape):
    """Returns `input_shape` as a tuple `(height, width, channels)`, checking it.

    Shared by the backbones: height and width may be `None` (any size), the number of channels
    must be known.
    """
    what = "a tuple (height, width, channels) of positive integers, height and width may be None"
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise ValueError(f"`input_shape` must be {what}; received input_shape={input_shape!r}.")
    shape = tuple(input_shape)

    def positive(dim):
        return isinstance(dim, numbers.Integral) and not isinstance(dim, bool) and dim >= 1

    if len(shape) != 3 or not positive(shape[2]) or not all(
        dim is None or positive(dim) for dim in shape[:2]
    ):
        raise ValueError(f"`input_shape` must be {what}; received input_shape={input_shape!r}.")
    return tuple(None if dim is None else int(dim) for dim in shape)


def check_stages(stages):
    """Returns `stages` as an int in 1-4 (how many stages of the small ResNet to keep)."""
    stages = check_int("stages", stages)
    if not 1 <= stages <= 4:
        raise ValueError(f"`stages` must be an integer in 1-4; received stages={stages!r}.")
    return stages


def input_normalization(mean, std, channels):
    """Returns a `Normalization` layer for per-channel `mean` and `std`, or `None` without them.

    Shared by the backbones. `mean` and `std` hold one number per input channel, in the pixel
    scale of the inputs; the layer computes `(x - mean) / std`.
    """
    if mean is None and std is None:
        return None
    for name, value, other in (("mean", mean, "std"), ("std", std, "mean")):
        if value is None:
            raise ValueError(
                f"`{name}` must be given together with `{other}`; received {name}=None."
            )
    values = {}
    for name, value in (("mean", mean), ("std", std)):
        items = list(value) if hasattr(value, "__iter__") else None
        if (
            isinstance(value, (str, bytes))
            or items is None
            or len(items) != channels
            or not all(
                isinstance(item, numbers.Real) and not isinstance(item, bool) for item in items
            )
        ):
            raise ValueError(
                f"`{name}` must be a sequence of {channels} number(s), one per input channel; "
                f"received {name}={value!r}."
            )
        values[name] = [float(item) for item in items]
    if not all(item > 0 for item in values["std"]):
        raise ValueError(f"`std` must hold positive numbers; received std={std!r}.")
    return keras.layers.Normalization(
        mean=values["mean"], variance=[item**2 for item in values["std"]], name="normalization"
    )


def _conv(filters, kernel_size, strides, name):
    """A bias-free conv with torchvision's He-normal (fan_out) initialisation."""
    layers = []
    padding = "same"
    if strides > 1 and kernel_size > 1:
        # PyTorch pads (k - 1) / 2 on every side; "same" would pad only bottom/right here.
        layers.append(
            keras.layers.ZeroPadding2D(
                kernel_size // 2, data_format="channels_last", name=name + "_pad"
            )
        )
        padding = "valid"
    if strides > 1 and kernel_size == 1:
        # A strided 1x1 conv reads every `strides`-th pixel: subsample, then convolve at
        # stride 1 (the same function and weights). oneDNN's strided 1x1 backward-weights
        # kernel, which PyTorch runs on CPUs for channels-last inputs, writes past its
        # workspace when the input has fewer than 8 (AVX2) or 16 (AVX-512) channels:
        # heap corruption, crashes or a hang in `backward` (uxlfoundation/oneDNN#6035).
        layers.append(
            keras.layers.MaxPooling2D(
                1, strides, data_format="channels_last", name=name + "_subsample"
            )
        )
        strides = 1
    layers.append(
        keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            data_format="channels_last",
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, mode="fan_out", distribution="untruncated_normal"
            ),
            name=name + "_conv",
        )
    )
    return layers


def _conv_bn(x, filters, kernel_size, strides, name, relu):
    for layer in _conv(filters, kernel_size, strides, name):
        x = layer(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name + "_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=name + "_relu")(x)
    return x


def _basic_block(x, filters, strides, name):
    """torchvision's BasicBlock: two 3x3 conv-BN, identity or 1x1 conv-BN shortcut, ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, name + "_0", relu=False)
    x = _conv_bn(x, filters, 3, strides, name + "_1", relu=True)
    x = _conv_bn(x, filters, 3, 1, name + "_2", relu=False)
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.ReLU(name=name + "_out")(x)


POOLINGS = ("avg", "corners", "grid")


def last_map_size(image_size, stages=4):
    """The side of the last feature map that `SmallResNet(stages=stages)` makes of square
    `image_size`-pixel images: each stage after the first halves it, rounding up (a 28-pixel
    image with four stages gives 4, a 14-pixel crop with three gives 4)."""
    size = check_int("image_size", image_size, minimum=1)
    for _ in range(check_stages(stages) - 1):
        size = (size + 1) // 2
    return size


def check_pooling(pooling, grid_size):
    """Returns `(pooling, grid_size)` checked: a name of `POOLINGS`, and `grid_size` (a
    positive int) other than its default 2 only with `pooling="grid"`."""
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of {POOLINGS}; received pooling={pooling!r}.")
    grid_size = check_int("grid_size", grid_size, minimum=1)
    if grid_size != 2 and pooling != "grid":
        raise ValueError(
            f"`grid_size` applies to pooling='grid' only; received grid_size={grid_size!r} "
            f"with pooling={pooling!r}."
        )
    return pooling, grid_size


def SmallResNet(
    width=64,
    input_shape=(None, None, 3),
    mean=None,
    std=None,
    stages=4,
    pooling="avg",
    grid_size=2,
    name="small_resnet",
):
    """Builds the small ResNet encoder: ResNet-18 blocks, 3x3 stride-1 stem, no max-pool.

    The usual backbone for self-supervised learning on small images (CIFAR, STL, Fashion-MNIST):
    torchvision's ResNet-18 with the 7x7 stride-2 stem and its max-pool replaced by a 3x3
    stride-1 conv, so that a 28x28 or 32x32 image keeps its resolution in the first stage.
    Four stages of two BasicBlocks with widths `(w, 2w, 4w, 8w)`, stride 2 at the first block of
    stages 2-4 (1x1 conv + BatchNorm shortcut where the shape changes), then global average
    pooling: the output is `[batch, 8 * width]` features (`model.output_shape[-1]`). Any input
    size and channel count; one model traces once per input size under `jit`.

    `stages` keeps only the first stages (the output is then `[batch, 2**(stages-1) * width]`).
    On Fashion-MNIST, after SwAV pretraining of the four-stage encoder, the third stage's
    pooled features gave a better kNN than the fourth's (`experiments/knn_by_stage.py`,
    figures in `experiments/README.md`): at small budgets the last stage specialises in the
    pretext task. Layer names do not depend on `stages`, so the weights of the kept stages
    of a four-stage model load into a shorter one by name.

    `pooling="corners"` ends the encoder in `CornerAveragePooling2D` instead of a global
    average: the last map averaged over its four corner windows, a 2x2 grid of cells
    flattened, `4 * 2**(stages-1) * width` features that keep where things are (top or
    bottom, left or right). For centred, aligned images such as Fashion-MNIST's, where a
    global average throws that cue away (benchmarks/RESULTS.md, "Linear evaluation without
    global pooling"). Its `.keras` file needs `swav_keras` imported to load (a custom layer).
    `pooling="grid"` ends it in `GridAveragePooling2D(grid_size)`: the last map cut into
    `grid_size x grid_size` disjoint cells, each averaged, `grid_size**2` times the features.
    Unlike the corner windows, which share most of the map, every position counts in one cell
    only; on Fashion-MNIST, the kNN of an encoder's last map pooled that way beat its corner
    pooling and its global average (benchmarks/RESULTS.md, "Pooling the last map").

    As in torchvision, convolutions have no bias and He-normal (fan_out) initialisation,
    BatchNorm uses PyTorch's defaults (`momentum=0.9` in Keras terms, `epsilon=1e-5`) and
    stride-2 convs pad one pixel on every side, so torchvision weights map one to one.

    With `mean` and `std`, the first layer is a `keras.layers.Normalization` computing
    `(x - mean) / std` per channel: the model, and a `.keras` file saved from it, take raw
    pixels (e.g. 0-255), and the statistics travel with the weights.

    Args:
        width: positive int, channels of the stem and the first stage. Defaults to `64`
            (ResNet-18, 512 features).
        input_shape: `(height, width, channels)`, channels-last; height and width may be `None`
            to accept any size. Defaults to `(None, None, 3)`.
        mean: per-channel means (one number per channel) in the pixel scale of the inputs, or
            `None` for no normalisation layer. Defaults to `None`.
        std: per-channel standard deviations, positive, given with `mean`. Defaults to `None`.
        stages: int in 1-4, how many stages to keep. Defaults to `4` (ResNet-18).
        pooling: `"avg"` (global average pooling), `"corners"` (2x2 corner pooling, four
            times the features) or `"grid"` (`grid_size x grid_size` disjoint cells).
            Defaults to `"avg"`.
        grid_size: positive int, cells along each side with `pooling="grid"` (only then may
            it differ from its default). Defaults to `2`.
        name: name of the model. Defaults to `"small_resnet"`.

    Returns:
        A functional `keras.Model` mapping images `[batch, height, width, channels]` to features
        `[batch, 2**(stages - 1) * width]` (four times that with `pooling="corners"`,
        `grid_size**2` times with `pooling="grid"`).

    Example:

    >>> import numpy as np
    >>> from swav_keras.backbones import SmallResNet
    >>> encoder = SmallResNet(width=4, input_shape=(None, None, 1), mean=[72.9], std=[90.0])
    >>> encoder.output_shape
    (None, 32)
    >>> tuple(encoder(np.zeros((2, 28, 28, 1), "float32")).shape)
    (2, 32)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """
    width = check_int("width", width, minimum=1)
    stages = check_stages(stages)
    pooling, grid_size = check_pooling(pooling, grid_size)
    input_shape = check_input_shape(input_shape)
    normalization = input_normalization(mean, std, input_shape[-1])
    inputs = keras.Input(input_shape, name="input")
    x = inputs if normalization is None else normalization(inputs)
    x = _conv_bn(x, width, 3, 1, "conv1", relu=True)
    for stage, multiplier in enumerate((1, 2, 4, 8)[:stages]):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width * multiplier, strides, f"conv{stage + 2}_block{block + 1}")
    if pooling == "corners":
        outputs = CornerAveragePooling2D(name="corner_pool")(x)
    elif pooling == "grid":
        outputs = GridAveragePooling2D(grid_size, name="grid_pool")(x)
    else:
        pool = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")
        outputs = pool(x)
    return keras.Model(inputs, outputs, name=name)
