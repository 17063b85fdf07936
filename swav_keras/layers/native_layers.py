"""Conv2D, BatchNormalization and MaxPooling2D computed by the backend's own kernels where it
has them."""

import keras
from keras import ops

from swav_keras import backends
from swav_keras.keras_internals import keras_mask


class _DirectCall:
    """`__call__` straight to `call(inputs)` where `_direct` allows (layers whose `call` takes
    the inputs alone; a functional model passes `training` to every layer all the same)."""

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and set(kwargs) <= {"training"} and _direct(self, args[0]):
            return self.call(args[0])
        return super().__call__(*args, **kwargs)


@keras.saving.register_keras_serializable(package="swav_keras", name="NativeConv2D")
class Conv2D(_DirectCall, keras.layers.Conv2D):
    """`keras.layers.Conv2D` computed by the backend adapter's `native_ops().conv2d`.

    Exported as `swav_keras.layers.NativeConv2D`. Why: under PyTorch, Keras's convolution
    copies each channels-last input to `[B, C, H, W]` and back to PyTorch's `channels_last`
    memory format (two copies forward, more backward); the adapter hands PyTorch a
    channels-first view of the same memory instead, so a ResNet runs without layout copies.
    Where the adapter has no native kernels (TensorFlow, JAX) it computes as its parent. Same
    arguments, weights and outputs as `Conv2D`, and the same class name (weight files address
    layers by class name, so checkpoints move between the two); `to_keras_layers` gives plain
    Keras layers back for export.

    `to_native_layers` also folds a `ZeroPadding2D` that feeds only a `"valid"` convolution
    (a strided conv padded as PyTorch pads) into the convolution's `fused_padding`: PyTorch
    pads inside its kernel, where the separate layer allocates and fills a padded copy of the
    activations each step; `to_keras_layers` puts the `ZeroPadding2D` back.

    Args:
        filters, kernel_size, **kwargs: as `keras.layers.Conv2D`. The native kernel serves
            channels-last `"valid"` convolutions and `"same"` ones at stride 1 with odd
            (dilated) kernels; any other configuration computes as `Conv2D`.
        fused_padding: the `get_config()` of a channels-last `keras.layers.ZeroPadding2D`
            with the same padding on both sides of each axis, applied before the
            convolution (then `padding` must be `"valid"`), or `None`. Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import NativeConv2D
    >>> tuple(NativeConv2D(4, 3, padding="same")(np.ones((2, 8, 8, 1), "float32")).shape)
    (2, 8, 8, 4)
    """

    def __init__(self, *args, fused_padding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused_padding = fused_padding
        self._pad = None
        if fused_padding is not None:
            pad = _symmetric_padding(fused_padding)
            if pad is None or self.padding != "valid" or self.data_format != "channels_last":
                raise ValueError(
                    "`fused_padding` must be the config of a channels-last ZeroPadding2D with "
                    "equal padding on both sides of each axis, before a channels-last "
                    f"'valid' convolution; received fused_padding={fused_padding!r} with "
                    f"padding={self.padding!r}, data_format={self.data_format!r}."
                )
            self._pad = pad  # (rows, columns) added on each side

    def convolution_op(self, inputs, kernel):
        native = backends.active().native_ops()
        padding = self._native_padding()
        if native is None or padding is None:
            if self._pad is not None:
                rows, columns = self._pad
                inputs = ops.pad(inputs, [[0, 0], [rows, rows], [columns, columns], [0, 0]])
            return super().convolution_op(inputs, kernel)
        kernel = ops.convert_to_tensor(kernel)
        return native.conv2d(inputs, kernel, self.strides, padding, self.dilation_rate, self.groups)

    def compute_output_shape(self, input_shape):
        if self._pad is not None:
            input_shape = list(input_shape)
            for axis, amount in zip((1, 2), self._pad):
                if input_shape[axis] is not None:
                    input_shape[axis] += 2 * amount
        return super().compute_output_shape(tuple(input_shape))

    def get_config(self):
        return {**super().get_config(), "fused_padding": self.fused_padding}

    def _native_padding(self):
        """Symmetric padding per spatial axis, or None where the native kernel does not fit."""
        if self.data_format != "channels_last":
            return None
        if self.padding == "valid":
            return self._pad or (0, 0)
        if self.padding == "same" and self.strides == (1, 1):
            spans = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation_rate)]
            if all(span % 2 == 0 for span in spans):
                return tuple(span // 2 for span in spans)
        return None


@keras.saving.register_keras_serializable(package="swav_keras", name="NativeBatchNormalization")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by the adapter's `native_ops().batch_norm`.

    Exported as `swav_keras.layers.NativeBatchNormalization`. Why: Keras computes BatchNorm
    with generic ops (moments, subtract, multiply, add: about a dozen passes over the
    activations forward and as many backward, each kept for backward); PyTorch has one fused
    kernel each way. The moving statistics are updated as Keras does (biased batch variance,
    `moving = moving * momentum + batch * (1 - momentum)`). Where the adapter has no native
    kernels (TensorFlow, JAX), and for masks, renormalisation, synchronised statistics or an axis
    other than the last, it computes as its parent. Same class name as Keras's, as
    `NativeConv2D`.

    Args:
        **kwargs: `keras.layers.BatchNormalization` arguments. Defaults to its defaults.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import NativeBatchNormalization
    >>> layer = NativeBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> tuple(layer(np.ones((4, 3), "float32"), training=True).shape)
    (4, 3)
    """

    def __call__(self, *args, **kwargs):
        # A functional model passes `training` and `mask` (None without masking).
        training = kwargs.get("training")
        if (len(args) == 1 and set(kwargs) <= {"training", "mask"} and training is not None
                and kwargs.get("mask") is None and _direct(self, args[0])):
            return self.call(args[0], training=training)
        return super().__call__(*args, **kwargs)

    @property
    def synchronized_across_replicas(self):
        """Whether batch statistics are global (then Keras's ops compute this layer)."""
        # `synchronize_batch_normalization` sets an instance `_moments`: Keras's path reads it.
        return self.synchronized or "_moments" in self.__dict__

    def call(self, inputs, training=None, mask=None):
        native = backends.active().native_ops()
        last_axis = self.axis in (-1, len(inputs.shape) - 1)
        synchronized = self.synchronized_across_replicas
        if native is None or mask is not None or self.renorm or synchronized or not last_axis:
            return super().call(inputs, training=training, mask=mask)
        # Statistics, parameters and moving averages in (at least) float32, as Keras. A float16
        # or bfloat16 input goes in as it is: the fused kernel accumulates in float32 and
        # returns the input's dtype, where a float32 copy (Keras's path) would be kept for the
        # backward pass of every BatchNorm.
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        if keras.backend.standardize_dtype(inputs.dtype) not in ("float16", "bfloat16"):
            inputs = ops.cast(inputs, dtype)
        gamma = ops.cast(self.gamma, dtype) if self.scale else None
        beta = ops.cast(self.beta, dtype) if self.center else None
        moving_mean = ops.cast(self.moving_mean, dtype)
        moving_variance = ops.cast(self.moving_variance, dtype)
        update = bool(training) and self.trainable
        outputs, mean, variance = native.batch_norm(
            inputs, gamma, beta, moving_mean, moving_variance, update, self.epsilon
        )
        if update:
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        return ops.cast(outputs, self.compute_dtype)


def _direct(layer, inputs):
    """Whether `layer.__call__` may hand `inputs` straight to `layer.call`.

    Where the backend has native kernels, Keras's `Layer.__call__` around each layer of a
    ResNet costs more Python time than PyTorch takes for a small convolution (a few hundred
    calls a step). For a built layer, a concrete tensor of the layer's
    compute dtype without a mask, no mixed precision, no activity regulariser or
    rematerialisation, and (for BatchNorm) an explicit `training`, `__call__` would do
    nothing but call `call`: the layers then skip it (variables read inside `call` still
    follow a `StatelessScope`). Symbolic calls (building, cloning) and anything else take
    Keras's full path.
    """
    return (
        layer.built
        and backends.active().native_ops() is not None
        and keras.ops.is_tensor(inputs)
        and not keras.utils.is_keras_tensor(inputs)
        and keras_mask(inputs) is None
        and layer.activity_regularizer is None
        and getattr(layer, "_remat_mode", None) is None
        and layer.compute_dtype == layer.variable_dtype
        and keras.backend.standardize_dtype(inputs.dtype) == layer.compute_dtype
    )


@keras.saving.register_keras_serializable(package="swav_keras", name="NativeMaxPooling2D")
class MaxPooling2D(_DirectCall, keras.layers.MaxPooling2D):
    """`keras.layers.MaxPooling2D` whose 1x1 pooling (a strided subsample) is a strided view.

    Exported as `swav_keras.layers.NativeMaxPooling2D`. Why: `SmallResNet` subsamples before
    its strided 1x1 shortcut convolutions with `MaxPooling2D(1, 2)`; under PyTorch, Keras's
    pooling copies the whole channels-last input to `[B, C, H, W]` first and keeps indices
    for backward, where the adapter's `native_ops().subsample` takes every `strides`-th pixel
    as a view. Any other pooling, or a backend without native kernels, computes as its
    parent. Same arguments, outputs and class name as `MaxPooling2D`.

    Args:
        **kwargs: `keras.layers.MaxPooling2D` arguments. Defaults to its defaults.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import NativeMaxPooling2D
    >>> tuple(NativeMaxPooling2D(1, 2)(np.ones((2, 7, 7, 3), "float32")).shape)
    (2, 4, 4, 3)
    """

    def call(self, inputs):
        native = backends.active().native_ops()
        if native is None or self.pool_size != (1, 1) or self.data_format != "channels_last":
            return super().call(inputs)
        return native.subsample(inputs, self.strides)


def _symmetric_padding(config):
    """`(rows, columns)` that a channels-last `ZeroPadding2D` config adds on each side, where
    both sides of each axis are equal; else None."""
    try:
        layer = keras.layers.ZeroPadding2D.from_config(config)
    except (TypeError, ValueError, KeyError):
        return None
    pad = tuple(tuple(int(side) for side in axis) for axis in layer.padding)
    if layer.data_format != "channels_last" or any(a != b for a, b in pad):
        return None
    return tuple(a for a, _ in pad)


NativeConv2D = Conv2D
NativeBatchNormalization = BatchNormalization
NativeMaxPooling2D = MaxPooling2D
