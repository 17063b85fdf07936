"""Writes `encoder_<backend>.keras` and `encoder_<backend>.npz` for the portability test.

Run once per backend from the repository root:

    for b in tensorflow jax torch; do
        KERAS_BACKEND=$b python tests/golden/make_encoder_golden.py
    done

Each run builds a width-4 grayscale `SmallResNet` with a normalisation layer, trains it two
`fit` steps on fixed data (so BatchNorm moving statistics are not their initial 0 and 1),
saves it as `.keras` and stores fixed raw-pixel inputs of two sizes with the outputs of the
saved model in inference mode. `tests/encoder_portability_test.py` loads every backend's file
under each backend and compares.
"""

import os

import keras
import numpy as np

from swav_keras.backbones.small_resnet import SmallResNet

# Fashion-MNIST's pixel mean and standard deviation in the 0-255 scale.
MEAN = [72.94]
STD = [90.02]
GOLDEN_DIR = os.path.dirname(os.path.abspath(__file__))


def golden_inputs():
    """Fixed raw-pixel inputs of two resolutions, as SwAV's large and small crops."""
    rng = np.random.default_rng(2020)
    return {
        "inputs_28": rng.uniform(0, 255, (4, 28, 28, 1)).astype("float32"),
        "inputs_14": rng.uniform(0, 255, (3, 14, 14, 1)).astype("float32"),
    }


def main():
    backend = keras.backend.backend()
    keras.utils.set_random_seed(1234)
    model = SmallResNet(width=4, input_shape=(None, None, 1), mean=MEAN, std=STD)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 14, 14, 1)).astype("float32")
    y = rng.normal(size=(16, model.output_shape[-1])).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # two steps

    path = os.path.join(GOLDEN_DIR, f"encoder_{backend}.keras")
    model.save(path)
    # The outputs of the saved file, so that the golden checks loading, not only saving.
    loaded = keras.saving.load_model(path, compile=False)
    arrays = {}
    for key, inputs in golden_inputs().items():
        arrays[key] = inputs
        arrays[key.replace("inputs", "outputs")] = keras.ops.convert_to_numpy(
            loaded(inputs, training=False)
        )
    np.savez_compressed(os.path.join(GOLDEN_DIR, f"encoder_{backend}.npz"), **arrays)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
