"""Tests of `swav_keras.evaluation.corner_pooled_encoder`, run under every backend."""

import keras
import numpy as np
import numpy_reference as ref
import pytest

from swav_keras.backbones import SmallResNet
from swav_keras.evaluation import corner_pooled_encoder, extract_features


def test_encoder_keeps_its_layers_and_pools_its_last_map():
    keras.utils.set_random_seed(0)
    encoder = SmallResNet(8, (28, 28, 1), mean=[72.9], std=[90.0], stages=3)
    images = np.random.default_rng(2).uniform(0, 255, (6, 28, 28, 1)).astype("float32")
    pooled = corner_pooled_encoder(encoder)
    assert pooled.output_shape == (None, 4 * 32)
    assert len(pooled.weights) == len(encoder.weights)
    features, _ = extract_features(pooled, images, verbose=0)
    last_map = keras.Model(encoder.inputs, encoder.layers[-1].input).predict(images, verbose=0)
    assert last_map.shape[1:3] == (7, 7)
    np.testing.assert_allclose(features, ref.sliding_average(last_map, 6, 6), rtol=1e-4, atol=1e-5)
    # The same map averaged globally is the encoder's own output.
    own, _ = extract_features(encoder, images, verbose=0)
    np.testing.assert_allclose(own, last_map.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_encoder_of_unknown_image_size():
    keras.utils.set_random_seed(0)
    pooled = corner_pooled_encoder(SmallResNet(4, (None, None, 1), stages=2))
    assert pooled.output_shape == (None, 4 * 8)
    for size in (16, 28):
        images = np.zeros((2, size, size, 1), "float32")
        assert pooled.predict(images, verbose=0).shape == (2, 32)


def test_encoders_without_a_final_global_average_pooling_are_refused():
    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs))
    dense = keras.Model(inputs, logits)
    with pytest.raises(ValueError) as error:
        corner_pooled_encoder(dense)
    assert str(error.value) == (
        "`encoder` must end in a channels-last GlobalAveragePooling2D layer, whose input map is "
        "pooled 2x2 instead; received an encoder whose last layer is Dense 'logits'."
    )
    pooled = keras.layers.GlobalAveragePooling2D("channels_first", name="gap")(inputs)
    first = keras.Model(inputs, pooled)
    with pytest.raises(ValueError) as error:
        corner_pooled_encoder(first)
    assert str(error.value).endswith("layer is GlobalAveragePooling2D 'gap' (channels_first).")
    with pytest.raises(TypeError) as error:
        corner_pooled_encoder("encoder.keras")
    assert str(error.value) == "`encoder` must be a keras.Model; received encoder of type str."
