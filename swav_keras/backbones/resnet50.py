"""The paper's ResNet-50 encoder, built from `keras.applications.ResNet50` without weights."""

import keras

from swav_keras.backbones.small_resnet import check_input_shape, input_normalization


def ResNet50(input_shape=(None, None, 3), mean=None, std=None, name="resnet50"):
    """Builds the ResNet-50 encoder of SwAV's main results: images to 2048 pooled features.

    The architecture is Keras's own `keras.applications.ResNet50(include_top=False,
    weights=None, pooling="avg")`, randomly initialised (nothing is downloaded), for any input
    size and channel count. Its BatchNorm layers are set to PyTorch's defaults as in the
    original (`momentum=0.9` in Keras terms, `epsilon=1e-5`). It differs from the torchvision
    ResNet-50 of the original code in details that do not change its size class: convolutions
    carry biases (23.59M instead of 23.51M parameters), the stride-2 of a bottleneck is on its
    first 1x1 conv (ResNet v1, torchvision uses v1.5) and kernels start Glorot-uniform.

    With `mean` and `std`, the first layer is a `keras.layers.Normalization` computing
    `(x - mean) / std` per channel: the model, and a `.keras` file saved from it, take raw
    pixels (e.g. 0-255), and the statistics travel with the weights.

    Args:
        input_shape: `(height, width, channels)`, channels-last; height and width may be `None`
            to accept any size (at least 32x32 gives one pooled pixel). Defaults to
            `(None, None, 3)`.
        mean: per-channel means (one number per channel) in the pixel scale of the inputs, or
            `None` for no normalisation layer. Defaults to `None`.
        std: per-channel standard deviations, positive, given with `mean`. Defaults to `None`.
        name: name of the model. Defaults to `"resnet50"`.

    Returns:
        A functional `keras.Model` mapping images `[batch, height, width, channels]` to features
        `[batch, 2048]`.

    Example:

    >>> from swav_keras.backbones import ResNet50
    >>> encoder = ResNet50(input_shape=(224, 224, 3), mean=[123.7, 116.3, 103.5],
    ...                    std=[58.4, 57.1, 57.4])
    >>> encoder.output_shape
    (None, 2048)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """
    input_shape = check_input_shape(input_shape)
    normalization = input_normalization(mean, std, input_shape[-1])
    input_tensor = None
    if normalization is not None:
        input_tensor = normalization(keras.Input(input_shape, name="input"))
    model = keras.applications.ResNet50(
        include_top=False,
        weights=None,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling="avg",
        name=name,
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
            layer.epsilon = 1e-5
    if normalization is not None:
        # keras.applications takes the inputs as a list here; a single input tensor makes the
        # model accept a plain array without a structure warning.
        model = keras.Model(model.inputs[0], model.outputs[0], name=name)
    return model
