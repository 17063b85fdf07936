"""A 2D convolution computed as one matrix product over image patches (im2col)."""

import keras
from keras import ops

from swav_keras import backends


def im2col_conv(inputs, kernel):
    """Stride-1 'same' convolution of channels-last `inputs` as patches @ kernel.

    The `kernel_size**2` shifted windows of the zero-padded input are concatenated along the
    channels (`[batch, height, width, k*k*in]`) and multiplied once by the kernel reshaped to
    `[k*k*in, out]`: the same numbers as `keras.ops.conv(inputs, kernel, padding="same")`, in
    a form whose gradients are slices and matrix products.

    Why: XLA's CPU convolutions have slow gradients for some shapes (the kernel gradient of a
    28x28 16-channel 3x3 conv takes many times its forward); in a whole SwAV step of the small
    ResNet on a CPU, JAX trains more images per second with this form
    (`benchmarks/train_step_throughput.py --conv_implementations=native,im2col`, figures in
    `benchmarks/RESULTS.md`). On GPUs and TPUs the native convolution is faster.

    Args:
        inputs: `[batch, height, width, in]` tensor.
        kernel: `[k, k, in, out]` tensor, `k` odd.

    Returns:
        `[batch, height, width, out]` tensor.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from swav_keras.layers import im2col_conv
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 5, 5, 2)).astype("float32")
    >>> k = rng.normal(size=(3, 3, 2, 4)).astype("float32")
    >>> same = keras.ops.conv(x, k, padding="same")
    >>> np.allclose(np.asarray(im2col_conv(x, k)), np.asarray(same), atol=1e-4)
    True
    """
    size = kernel.shape[0]
    half = size // 2
    height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
    padded = ops.pad(inputs, [[0, 0], [half, half], [half, half], [0, 0]])
    patches = ops.concatenate(
        [
            padded[:, i : i + height, j : j + width, :]
            for i in range(size)
            for j in range(size)
        ],
        axis=-1,
    )
    return ops.matmul(patches, ops.reshape(kernel, (-1, kernel.shape[-1])))


@keras.saving.register_keras_serializable(package="swav_keras")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` computed by `im2col_conv`: same arguments, weights and output.

    Exported as `swav_keras.layers.Im2colConv2D`. For stride-1 'same' convolutions with an odd
    square kernel, channels-last: the convolutions of ResNet blocks. Its variables are a
    `Conv2D`'s, and so is its class name: Keras addresses a model's layers in weight files by
    class name, so checkpoints and backups move between the two implementations (a run
    started with one resumes with the other). `to_conv2d` turns a model's layers back into
    `keras.layers.Conv2D` for export; `to_im2col_conv2d` makes every eligible `Conv2D` of a
    model one of these.

    Args:
        filters, kernel_size, **kwargs: as `keras.layers.Conv2D`; `kernel_size` odd and
            square, `strides` and `dilation_rate` 1, `groups` 1, `padding="same"`,
            `data_format="channels_last"` (the defaults except `padding`).

    Example:

    ```python
    from swav_keras.layers import Im2colConv2D

    layer = Im2colConv2D(16, 3, padding="same")
    ```
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        reason = _ineligible(self)
        if reason:
            raise ValueError(f"Im2colConv2D needs {reason}.")

    def convolution_op(self, inputs, kernel):
        return im2col_conv(inputs, kernel)


Im2colConv2D = Conv2D


def _ineligible(layer):
    """Why `layer` (a Conv2D) cannot be computed by `im2col_conv`, or `None`."""
    size = layer.kernel_size
    checks = (
        (size[0] == size[1] and size[0] % 2 == 1, f"an odd square kernel_size; received {size}"),
        (layer.strides == (1, 1), f"strides=1; received strides={layer.strides}"),
        (layer.dilation_rate == (1, 1), f"dilation_rate=1; received {layer.dilation_rate}"),
        (layer.groups == 1, f"groups=1; received groups={layer.groups}"),
        (layer.padding == "same", f"padding='same'; received padding={layer.padding!r}"),
        (
            layer.data_format == "channels_last",
            f"data_format='channels_last'; received data_format={layer.data_format!r}",
        ),
    )
    return next((reason for ok, reason in checks if not ok), None)


def _replace_convs(model, should_replace, target):
    def clone(layer):
        if should_replace(layer):
            return target.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def to_im2col_conv2d(model):
    """A copy of `model` in which every eligible `Conv2D` is an `Im2colConv2D` (same weights).

    Eligible: stride-1 'same' convolutions with an odd square kernel (1x1 included),
    channels-last, without dilation or groups; the others stay as they are.

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same architecture, weights and function.

    Example:

    >>> from swav_keras.backbones import SmallResNet
    >>> from swav_keras.layers import Im2colConv2D, to_conv2d, to_im2col_conv2d
    >>> fast = to_im2col_conv2d(SmallResNet(4, (None, None, 1)))
    >>> any(isinstance(layer, Im2colConv2D) for layer in fast.layers)
    True
    >>> any(isinstance(layer, Im2colConv2D) for layer in to_conv2d(fast).layers)
    False
    """
    return _replace_convs(
        model,
        lambda layer: type(layer) is keras.layers.Conv2D and _ineligible(layer) is None,
        Im2colConv2D,
    )


def to_conv2d(model):
    """A copy of `model` with plain `keras.layers.Conv2D` for every `Im2colConv2D` (export).

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same architecture, weights and function.
    """
    return _replace_convs(
        model, lambda layer: isinstance(layer, Im2colConv2D), keras.layers.Conv2D
    )


CONV_IMPLEMENTATIONS = ("auto", "native", "im2col")


def with_conv_implementation(model, implementation="auto"):
    """`model` with its convolutions computed as `implementation`, and the name it chose.

    What the pretrain recipe's `--conv_implementation` and the throughput benchmark use: the
    same weights and results either way, only the speed differs (im2col is the faster on JAX
    on CPU; figures in `benchmarks/RESULTS.md`).

    Args:
        model: a functional or sequential `keras.Model` with Keras `Conv2D` layers.
        implementation: `"native"` (the model as it is), `"im2col"` (`to_im2col_conv2d`), or
            `"auto"`: im2col where the active backend adapter prefers it
            (`prefers_im2col_conv()`), native elsewhere. Defaults to `"auto"`.

    Returns:
        `(model, chosen)`, `chosen` being `"native"` or `"im2col"`.

    Example:

    ```python
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import with_conv_implementation

    encoder, chosen = with_conv_implementation(SmallResNet(width=16), "auto")
    ```
    """
    if implementation not in CONV_IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {CONV_IMPLEMENTATIONS}; received "
            f"implementation={implementation!r}."
        )
    if implementation == "auto":
        implementation = "im2col" if backends.active().prefers_im2col_conv() else "native"
    if implementation == "im2col":
        return to_im2col_conv2d(model), implementation
    return model, implementation
