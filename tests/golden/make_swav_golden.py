"""Writes `tests/golden/swav_golden.npz`: fixed weights, a fixed batch and the SwAV losses.

Run under any backend (`KERAS_BACKEND=tensorflow python tests/golden/make_swav_golden.py`);
`tests/swav_golden_test.py` then checks that every backend, given the same weights and batch,
computes the same loss, and the same loss again after one SGD step (so the same gradient).
"""

import os

import keras
import numpy as np

from swav_keras import SwAV

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "swav_golden.npz")


def build_model():
    """A small SwAV with explicitly named layers, so weights can be matched by path."""
    inputs = keras.Input((None, None, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    encoder = keras.Model(inputs, x, name="golden_encoder")
    model = SwAV(
        encoder, projection_dim=8, hidden_dim=32, num_prototypes=20, temperature=0.1,
        epsilon=0.05, sinkhorn_iterations=3, crops_for_assign=(0, 1), name="golden_swav",
    )
    model(batch(), training=False)
    return model


def batch():
    rng = np.random.default_rng(1234)
    sizes = (16, 16, 8, 8, 8)
    return tuple(rng.uniform(0, 1, (12, s, s, 1)).astype("float32") for s in sizes)


def trainable_paths(model):
    return sorted(v.path for v in model.trainable_weights)


def set_golden_weights(model, values):
    by_path = {v.path: v for v in model.weights}
    for path, value in values.items():
        by_path[path].assign(value)


def losses(model):
    """Loss of the first step, then of a second step on the same batch after one SGD update."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    first = model.train_on_batch(batch(), return_dict=True)["loss"]
    second = model.train_on_batch(batch(), return_dict=True)["loss"]
    return float(first), float(second)


def main():
    model = build_model()
    rng = np.random.default_rng(99)
    values = {}
    for v in model.trainable_weights:
        shape = tuple(v.shape)
        values[v.path] = (rng.normal(0, 0.3, shape) + (1.0 if "gamma" in v.path else 0.0))
        values[v.path] = values[v.path].astype("float32")
    kernel_path = model.prototypes.kernel.path
    k = values[kernel_path]
    values[kernel_path] = (k / np.linalg.norm(k, axis=0, keepdims=True)).astype("float32")
    set_golden_weights(model, values)
    first, second = losses(model)
    np.savez(
        GOLDEN,
        backend=keras.backend.backend(),
        paths=np.array(sorted(values)),
        first_loss=first,
        second_loss=second,
        **{f"w:{p}": values[p] for p in sorted(values)},
    )
    print(f"{keras.backend.backend()}: first loss {first:.7f}, second loss {second:.7f}")


if __name__ == "__main__":
    main()
