"""Conv2D and BatchNormalization computed by the backend's own fused kernels where it has them."""

import keras
from keras import ops

from swav_keras import backends
from swav_keras.keras_internals import keras_mask


@keras.saving.register_keras_serializable(package="swav_keras", name="NativeConv2D")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` computed by the backend adapter's `native_ops().conv2d`.

    Exported as `swav_keras.layers.NativeConv2D`. Why: under PyTorch, Keras's convolution
    copies each channels-last input to `[B, C, H, W]` and back to PyTorch's `channels_last`
    memory format (two copies forward, more backward); the adapter hands PyTorch a
    channels-first view of the same memory instead, so a ResNet runs without layout copies.
    Where the adapter has no native kernels (TensorFlow, JAX) it computes as its parent. Same
    arguments, weights and outputs as `Conv2D`, and the same class name (weight files address
    layers by class name, so checkpoints move between the two); `to_keras_layers` gives plain
    Keras layers back for export.

    Args:
        filters, kernel_size, **kwargs: as `keras.layers.Conv2D`. The native kernel serves
            channels-last `"valid"` convolutions and `"same"` ones at stride 1 with odd
            (dilated) kernels; any other configuration computes as `Conv2D`.

    Example:

    >>> import numpy as np
    >>> from swav_keras.layers import NativeConv2D
    >>> tuple(NativeConv2D(4, 3, padding="same")(np.ones((2, 8, 8, 1), "float32")).shape)
    (2, 8, 8, 4)
    """

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and _direct(self, args[0]):
            return self.call(args[0])
        return super().__call__(*args, **kwargs)

    def convolution_op(self, inputs, kernel):
        native = backends.active().native_ops()
        padding = self._native_padding()
        if native is None or padding is None:
            return super().convolution_op(inputs, kernel)
        kernel = ops.convert_to_tensor(kernel)
        return native.conv2d(inputs, kernel, self.strides, padding, self.dilation_rate, self.groups)

    def _native_padding(self):
        """Symmetric padding per spatial axis, or None where the native kernel does not fit."""
        if self.data_format != "channels_last":
            return None
        if self.padding == "valid":
            return (0, 0)
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
        training = kwargs.get("training")
        if (len(args) == 1 and set(kwargs) == {"training"} and training is not None
                and _direct(self, args[0])):
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
    ResNet costs more Python time than PyTorch takes for a small convolution (about 0.1 ms a
    layer, a few hundred calls a step). For a built layer, a concrete tensor of the layer's
    compute dtype without a mask, no mixed precision, no activity regulariser, and (for
    BatchNorm) an explicit `training`, `__call__` would do nothing but call `call`: the
    layers then skip it (variables read inside `call` still follow a `StatelessScope`).
    Symbolic calls (building, cloning) and anything else take Keras's full path.
    """
    return (
        layer.built
        and backends.active().native_ops() is not None
        and keras.ops.is_tensor(inputs)
        and not keras.utils.is_keras_tensor(inputs)
        and keras_mask(inputs) is None
        and layer.activity_regularizer is None
        and layer.compute_dtype == layer.variable_dtype
        and keras.backend.standardize_dtype(inputs.dtype) == layer.compute_dtype
    )


NativeConv2D = Conv2D
NativeBatchNormalization = BatchNormalization

_NATIVE = {keras.layers.Conv2D: NativeConv2D,
           keras.layers.BatchNormalization: NativeBatchNormalization}
_KERAS = {NativeConv2D: keras.layers.Conv2D,
          NativeBatchNormalization: keras.layers.BatchNormalization}


def _replace(model, targets):
    def clone(layer):
        target = targets.get(type(layer), type(layer))
        return target.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def to_native_layers(model):
    """A copy of `model` with `NativeConv2D` / `NativeBatchNormalization` for every plain
    `keras.layers.Conv2D` / `BatchNormalization` (same weights; subclasses stay as they are).

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same architecture, weights and function.

    Example:

    >>> from swav_keras.backbones import SmallResNet
    >>> from swav_keras.layers import NativeConv2D, to_keras_layers, to_native_layers
    >>> native = to_native_layers(SmallResNet(4, (None, None, 1)))
    >>> any(isinstance(layer, NativeConv2D) for layer in native.layers)
    True
    >>> any(isinstance(layer, NativeConv2D) for layer in to_keras_layers(native).layers)
    False
    """
    return _replace(model, _NATIVE)


def to_keras_layers(model):
    """A copy of `model` with plain Keras layers for every native one (export).

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model whose `.keras` file loads with Keras alone.
    """
    return _replace(model, _KERAS)


LAYER_IMPLEMENTATIONS = ("auto", "keras", "native")


def with_layer_implementation(model, implementation="auto"):
    """`model` with its convolutions and BatchNorms computed as `implementation`, and the name
    it chose.

    The same weights and results either way (to float32 rounding), only the speed differs:
    under PyTorch native layers are the faster (`benchmarks/step_vs_pytorch.py` times both;
    figures in `benchmarks/RESULTS.md`).

    Args:
        model: a functional or sequential `keras.Model`.
        implementation: `"keras"` (the model as it is), `"native"` (`to_native_layers`), or
            `"auto"`: native where the active backend adapter has native kernels
            (`native_ops()` is not None: PyTorch), the model as it is elsewhere.
            Defaults to `"auto"`.

    Returns:
        `(model, chosen)`, `chosen` being `"keras"` or `"native"`.

    Example:

    ```python
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import with_layer_implementation

    encoder, chosen = with_layer_implementation(SmallResNet(width=16), "auto")
    ```
    """
    if implementation not in LAYER_IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {LAYER_IMPLEMENTATIONS}; received "
            f"implementation={implementation!r}."
        )
    if implementation == "auto":
        implementation = "native" if backends.active().native_ops() is not None else "keras"
    if implementation == "native":
        return to_native_layers(model), implementation
    return model, implementation
