"""The private parts of Keras that swav_keras uses still exist and mean what they meant."""

import inspect

import keras
import numpy as np

from swav_keras import keras_internals
from swav_keras.multi_worker_fit import MultiWorkerFit


def nested_model():
    inner = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()],
                             name="inner")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="last")(inner(inputs))
    return keras.Model(inputs, outputs, name="outer"), inner


def test_flatten_layers_reaches_nested_models():
    model, inner = nested_model()
    names = [layer.name for layer in keras_internals.flatten_layers(model)]
    assert names[0] == "outer"
    assert {"inner", "last", *(layer.name for layer in inner.layers)} <= set(names)
    assert len(names) == len(set(names))


def test_distribute_strategy_of_a_plain_model_is_none():
    model, _ = nested_model()
    assert keras_internals.distribute_strategy(model) is None


def test_the_symbolic_build_hook_is_the_tensorflow_trainers():
    # Only TensorFlow's trainer has it (and only there does MultiWorkerFit matter).
    assert keras_internals.SYMBOLIC_BUILD_HOOK in vars(MultiWorkerFit)
    hook = getattr(keras.Model, keras_internals.SYMBOLIC_BUILD_HOOK, None)
    if keras.backend.backend() == "tensorflow":
        assert list(inspect.signature(hook).parameters) == ["self", "iterator", "data_batch"]
    else:
        assert hook is None


def test_optimizer_variable_key_and_index():
    variables = [keras.Variable(np.ones(2, "float32"), name=n) for n in ("a", "b", "c")]
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(variables)
    indices = [keras_internals.optimizer_variable_index(optimizer, v) for v in variables]
    keys = {keras_internals.optimizer_variable_key(optimizer, v) for v in variables}
    assert indices == [0, 1, 2] and len(keys) == 3


def test_the_optimizer_update_hook_exists_with_its_arguments():
    hook = getattr(keras.optimizers.Optimizer, keras_internals.BACKEND_UPDATE_STEP_HOOK)
    assert list(inspect.signature(hook).parameters) == [
        "self", "grads", "trainable_variables", "learning_rate"
    ]


def test_keras_mask_reads_the_mask_keras_attaches():
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(np.array([[1, 0]]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        keras_internals.keras_mask(embedded)), [[True, False]])
    assert keras_internals.keras_mask(keras.ops.ones((1, 2))) is None


def test_set_initial_epoch_in_on_train_begin_skips_epochs():
    class StartAtTwo(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            keras_internals.set_initial_epoch(self.model, 2)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=3, verbose=0,
                        callbacks=[StartAtTwo()])
    assert history.epoch == [2]


def test_tensorflow_backend_has_the_ops_the_augmentation_takes_from_it():
    # `swav_keras.augmentation.backend_ops` looks `keras.ops` names up in these modules.
    tensorflow = keras_internals.tensorflow_backend()
    for module, name in [("numpy", "einsum"), ("numpy", "take_along_axis"), ("core", "cast"),
                         ("core", "scatter_update"), ("nn", "relu"), ("image", "rgb_to_hsv"),
                         ("random", "uniform")]:
        assert callable(getattr(getattr(tensorflow, module), name))
