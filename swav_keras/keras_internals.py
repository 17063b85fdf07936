"""The private parts of Keras 3.15 that swav_keras relies on, gathered in one place.

Keras's public API has no equivalent for these. `pyproject.toml` keeps keras below 3.16 while
they are used, and `tests/keras_internals_test.py` checks each against the installed Keras:
after an upgrade, that test names what moved.
"""

# TensorFlow's trainer hook that builds a model from its first batch before `fit`'s first
# step, with the keyword arguments `iterator` and `data_batch`; `MultiWorkerFit` overrides it.
SYMBOLIC_BUILD_HOOK = "_maybe_symbolic_build"


def flatten_layers(layer):
    """`layer` and every layer inside it, nested models included (as Keras walks them)."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def distribute_strategy(model):
    """The `tf.distribute` strategy `model` was created under, or `None` (other backends)."""
    return getattr(model, "_distribute_strategy", None)


def optimizer_variable_key(optimizer, variable):
    """The key under which `optimizer` knows `variable` (stable across TF's wrappers)."""
    return optimizer._var_key(variable)


def optimizer_variable_index(optimizer, variable):
    """The position of `variable` among the variables `optimizer` was built with."""
    return optimizer._get_variable_index(variable)


# The optimizer hook that applies one step to all variables, `(grads, trainable_variables,
# learning_rate)`; LARS overrides it to update every variable at once where the backend can.
BACKEND_UPDATE_STEP_HOOK = "_backend_update_step"


def keras_mask(tensor):
    """The mask Keras attached to `tensor` (e.g. by `Embedding(mask_zero=True)`), or `None`."""
    return getattr(tensor, "_keras_mask", None)


def set_initial_epoch(model, epoch):
    """Makes `model.fit` start at `epoch`, as Keras's `BackupAndRestore` does after a restore."""
    model._initial_epoch = epoch


def tensorflow_backend():
    """Keras's TensorFlow backend module, importable under any backend.

    Keras's own preprocessing layers compute with it inside tf.data when another backend is
    active (`TFDataLayer`); `swav_keras.augmentation.backend_ops` does the same.
    """
    from keras.src.backend import tensorflow

    return tensorflow
