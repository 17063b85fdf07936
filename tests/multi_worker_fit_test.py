"""Tests of `MultiWorkerFit` outside a multi-worker strategy: it changes nothing there.

Under `MultiWorkerMirroredStrategy` (2 workers on localhost) it is what lets `SwAV.fit` run
at all; `distributed_test.py::test_multi_worker_equals_one_device` covers that case, on
TensorFlow.
"""

import keras
import numpy as np

from swav_keras.multi_worker_fit import MultiWorkerFit


class WithMixin(MultiWorkerFit, keras.Model):
    pass


def train(model_class):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,)), keras.Input((2,))
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = model_class(inputs=(a, b), outputs=keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 2)).astype("float32"))
    y = rng.normal(size=(16, 1)).astype("float32")
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return history.history, [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_nested_inputs_train_exactly_as_without_it():
    history, weights = train(WithMixin)
    reference_history, reference_weights = train(keras.Model)
    assert set(history) == {"loss", "mae"}
    for name in history:
        np.testing.assert_allclose(history[name], reference_history[name], rtol=1e-6)
    assert history["loss"][1] < history["loss"][0]
    for w, r in zip(weights, reference_weights):
        np.testing.assert_allclose(w, r, rtol=1e-6, atol=1e-7)
