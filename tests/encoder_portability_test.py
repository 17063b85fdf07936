"""An encoder saved under each backend loads under the running one with the saved outputs.

The golden files come from `tests/golden/make_encoder_golden.py`, run once per backend. Every
backend's test run loads all three, so "saved under one backend, loaded under each other one
with equal outputs" is checked in each run.
"""

import os

import keras
import numpy as np
import pytest

from swav_keras.backbones.small_resnet import SmallResNet

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
BACKENDS = ("tensorflow", "jax", "torch")


def _load(backend):
    model = keras.saving.load_model(
        os.path.join(GOLDEN_DIR, f"encoder_{backend}.keras"), compile=False
    )
    with np.load(os.path.join(GOLDEN_DIR, f"encoder_{backend}.npz")) as data:
        arrays = dict(data)
    return model, arrays


@pytest.mark.parametrize("saved_under", BACKENDS)
def test_saved_encoder_gives_saved_outputs(saved_under):
    model, arrays = _load(saved_under)
    assert model.name == "small_resnet"
    assert model.layers[1].name == "normalization"
    assert model.output_shape == (None, 32)
    for key in ("inputs_28", "inputs_14"):
        outputs = keras.ops.convert_to_numpy(model(arrays[key], training=False))
        expected = arrays[key.replace("inputs", "outputs")]
        assert outputs.shape == expected.shape == (len(arrays[key]), 32)
        np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("saved_under", BACKENDS)
def test_golden_is_not_trivial(saved_under):
    model, arrays = _load(saved_under)
    # Two fit steps moved the BatchNorm statistics away from their initial 0 and 1 ...
    bn = model.get_layer("conv1_bn")
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_mean)).max() > 1e-3
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_variance) - 1).max() > 1e-3
    # ... the raw-pixel statistics travel with the file ...
    assert model.layers[1].get_config()["mean"] == pytest.approx([72.94])
    # ... and the features differ between images.
    outputs = arrays["outputs_28"]
    assert np.abs(outputs - outputs[:1]).max() > 1e-3


def test_saved_architecture_is_the_current_one():
    """The golden files still describe what `SmallResNet` builds today."""
    model, _ = _load(keras.backend.backend())
    current = SmallResNet(width=4, input_shape=(None, None, 1), mean=[72.94], std=[90.02])
    assert [layer.name for layer in model.layers] == [layer.name for layer in current.layers]
    assert [w.shape for w in model.weights] == [w.shape for w in current.weights]
