"""The 2x2 pooled feature map of SwAV's linear evaluation without global pooling."""

import keras

from swav_keras.evaluation.features import check_encoder
from swav_keras.layers.corner_average_pooling import CornerAveragePooling2D


def corner_pooled_encoder(encoder):
    """The encoder with its final global average pooling replaced by 2x2 corner pooling.

    For linear evaluation as SwAV's `eval_linear.py --global_pooling false`: the encoder's
    last feature map (the input of its final `GlobalAveragePooling2D`) goes through
    `CornerAveragePooling2D` instead, so the model returns `4 * C` features per image instead
    of `C`. The layers (and weights) are the encoder's own; freeze or extract features as
    with the encoder itself. The standard protocol, and this project's kNN, use the encoder's
    own output (globally pooled, unless it ends in corner or grid pooling).

    Args:
        encoder: a functional or sequential `keras.Model` whose last layer is a channels-last
            `GlobalAveragePooling2D` (as this project's `SmallResNet` and `ResNet50`, and
            the `encoder.keras` files of `recipes/pretrain.py`).

    Returns:
        A `keras.Model` from the encoder's inputs to float32 features `[B, 4 * C]`.

    Example:

    ```python
    import keras
    from swav_keras.evaluation import corner_pooled_encoder, extract_features

    encoder = keras.saving.load_model("encoder.keras")  # e.g. runs/fmnist/encoder.keras
    features, labels = extract_features(corner_pooled_encoder(encoder), (images, labels))
    ```
    """
    check_encoder(encoder)
    last = encoder.layers[-1] if encoder.layers else None
    pools = isinstance(last, keras.layers.GlobalAveragePooling2D)
    if not pools or last.data_format != "channels_last":
        what = "no layer" if last is None else f"{type(last).__name__} {last.name!r}"
        what += " (channels_first)" if pools else ""
        raise ValueError(
            "`encoder` must end in a channels-last GlobalAveragePooling2D layer, whose input "
            f"map is pooled 2x2 instead; received an encoder whose last layer is {what}."
        )
    outputs = CornerAveragePooling2D(name="corner_pool")(last.input)
    return keras.Model(encoder.inputs, outputs, name=f"{encoder.name}_corner_pooled")
