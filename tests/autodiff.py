"""Gradients in tests, through the active backend's own autodiff (test support only)."""

import keras
import numpy as np


def gradients(fn, inputs):
    """Returns `(value, [d value / d input for input in inputs])` as NumPy arrays.

    Args:
        fn: callable taking a list of tensors and returning a scalar tensor.
        inputs: list of NumPy arrays.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(tensors)
        grads = tape.gradient(value, tensors)
        grads = [np.zeros_like(x) if g is None else g.numpy() for x, g in zip(inputs, grads)]
        return float(value), grads
    if backend == "jax":
        import jax

        value, grads = jax.value_and_grad(lambda xs: fn(list(xs)))(
            [jax.numpy.asarray(x) for x in inputs]
        )
        return float(value), [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        tensors = [torch.tensor(x, requires_grad=True) for x in inputs]
        value = fn(tensors)
        if value.requires_grad:  # no path to any input: every gradient is zero
            value.backward()
        grads = [
            np.zeros_like(x) if t.grad is None else t.grad.numpy() for x, t in zip(inputs, tensors)
        ]
        return float(value.detach()), grads
    raise ValueError(f"No autodiff helper for backend {backend!r}.")
