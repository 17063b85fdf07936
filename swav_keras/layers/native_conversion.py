"""Converting a model's layers to the backend's native ones (`native_layers.py`) and back."""

import keras

from swav_keras import backends
from swav_keras.layers.native_layers import (
    NativeBatchNormalization,
    NativeConv2D,
    NativeMaxPooling2D,
    _symmetric_padding,
)

_NATIVE = {keras.layers.Conv2D: NativeConv2D,
           keras.layers.BatchNormalization: NativeBatchNormalization,
           keras.layers.MaxPooling2D: NativeMaxPooling2D}
_KERAS = {native: plain for plain, native in _NATIVE.items()}


def _fusable_paddings(model):
    """{id(conv): padding layer} for each plain `ZeroPadding2D` of `model` whose output goes
    only to a plain channels-last `"valid"` `Conv2D` (each called once)."""
    pairs = {}
    if isinstance(model, keras.Sequential) or not hasattr(model, "operations"):
        return pairs
    outputs = {id(tensor) for tensor in keras.tree.flatten(model.outputs)}
    for pad in model.operations:
        if type(pad) is not keras.layers.ZeroPadding2D or len(pad._inbound_nodes) != 1:
            continue
        if id(pad.output) in outputs:  # the padded tensor is needed as it is
            continue
        if len(pad._outbound_nodes) != 1 or _symmetric_padding(pad.get_config()) is None:
            continue
        conv = pad._outbound_nodes[0].operation
        if (type(conv) is keras.layers.Conv2D and len(conv._inbound_nodes) == 1
                and conv.padding == "valid" and conv.data_format == "channels_last"):
            pairs[id(conv)] = pad
    return pairs


def _replace(model, targets):
    """`model` cloned with `targets[type(layer)]` for each layer of a listed type; to native
    layers, fusable paddings are folded into their convolutions, and back out again."""
    to_native = targets is _NATIVE
    functional = not isinstance(model, keras.Sequential)
    if not functional and not to_native:
        folded = [layer.name for layer in model.layers if getattr(layer, "fused_padding", None)]
        if folded:
            raise ValueError(
                "`model` is a Sequential model with NativeConv2D layers that hold a folded "
                "ZeroPadding2D, which a Sequential clone cannot put back; received layers "
                f"{folded}. Build it as a functional model."
            )
    fused = _fusable_paddings(model) if to_native else {}
    skipped = {id(pad) for pad in fused.values()}
    unfold = {}  # id(cloned plain conv) -> the ZeroPadding2D config to call before it
    pairs = []  # (original, copy): weights move layer by layer, whatever the clone's order

    def clone(layer):
        if id(layer) in skipped:
            return layer  # never called: its convolution pads
        config = layer.get_config()
        if id(layer) in fused:
            config["fused_padding"] = fused[id(layer)].get_config()
        padding = config.pop("fused_padding", None) if not to_native else None
        copy = targets.get(type(layer), type(layer)).from_config(config)
        if padding is not None:
            unfold[id(copy)] = padding
        pairs.append((layer, copy))
        return copy

    def call(layer, *args, **kwargs):
        if id(layer) in skipped:
            return args[0]
        if id(layer) in unfold:
            args = (keras.layers.ZeroPadding2D.from_config(unfold[id(layer)])(args[0]),)
        return layer(*args, **kwargs)

    copy = keras.models.clone_model(model, clone_function=clone,
                                    call_function=call if functional else None)
    for original, cloned in pairs:
        if original.weights:
            cloned.set_weights(original.get_weights())
    return copy


def to_native_layers(model):
    """A copy of `model` with `NativeConv2D` / `NativeBatchNormalization` /
    `NativeMaxPooling2D` for every plain `keras.layers.Conv2D` / `BatchNormalization` /
    `MaxPooling2D` (same weights; subclasses stay as they are).

    In a functional model, a `ZeroPadding2D` (equal sides) whose only consumer is a `"valid"`
    convolution is folded into that convolution (`NativeConv2D(fused_padding=...)`): the
    padding then happens inside PyTorch's kernel instead of in a padded copy of the
    activations. `to_keras_layers` restores the `ZeroPadding2D`, name and all.

    Args:
        model: a functional or sequential `keras.Model`.

    Returns:
        A new model of the same function and weights.

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
    """`model` with its convolutions, BatchNorms and max poolings computed as
    `implementation`, and the name it chose.

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
