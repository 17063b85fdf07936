"""An optimizer wrapper that skips the steps whose gradients hold NaN or Inf."""

import keras
from keras import ops

from swav_keras import backends


@keras.saving.register_keras_serializable(package="swav_keras")
class SkipNonFiniteOptimizer(keras.optimizers.LossScaleOptimizer):
    """Applies the inner optimizer's step only when every gradient is finite.

    A step whose gradients hold NaN or Inf (a corrupt input batch, a diverged loss) leaves
    the weights and the whole optimizer state, its iteration count (so the learning-rate
    schedule) and momentum buffers included, exactly as they were; a plain optimizer would
    write NaN into them, or, with a gradient zeroed instead, still move the momentum and the
    weight decay. `SwAV.compile` wraps its optimizer in one (but under `mixed_float16`, where
    Keras's dynamic `LossScaleOptimizer` skips such steps already).

    It is Keras's `LossScaleOptimizer` with the loss scale fixed at 1: the same skip on every
    backend, without scaling; a gradient that is not finite on any replica skips the step on
    all of them. Set the inner optimizer up before wrapping it (`model.optimizer.inner_optimizer`
    after `SwAV.compile`): the wrapper passes on `learning_rate`, `iterations` and
    `exclude_from_weight_decay` only.
    Checkpoints hold the inner optimizer's state once, in its own layout: a run saved with
    the bare optimizer resumes with the wrapper, and the other way round.
    Use it where an occasional bad batch must cost one step, not the run; pair it with a
    callback that reports the skipped step (`swav_keras.callbacks.TerminateOnNonFinite`).

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` whose steps are applied.
        name: name of the wrapper. Defaults to `None`.

    Example:

    ```python
    import keras
    from swav_keras.optimizers import SkipNonFiniteOptimizer

    optimizer = SkipNonFiniteOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))
    weight = keras.Variable([1.0, 2.0])
    optimizer.apply([keras.ops.array([float("nan"), 1.0])], [weight])  # skipped
    print(keras.ops.convert_to_numpy(weight), int(optimizer.iterations))  # [1. 2.] 0
    ```
    """

    def __init__(self, inner_optimizer, name=None):
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer) or isinstance(
            inner_optimizer, keras.optimizers.LossScaleOptimizer
        ):
            raise TypeError(
                "`inner_optimizer` must be a keras.optimizers.Optimizer that skips no steps "
                f"itself (not a LossScaleOptimizer); received inner_optimizer={inner_optimizer!r}."
            )
        super().__init__(inner_optimizer, initial_scale=1.0, name=name)

    def scale_loss(self, loss):
        return loss

    # The parent's four branches, without the scale: apply the inner step, or nothing.
    def _stateful_handle_finite_grads(self, grads, trainable_variables):
        self.inner_optimizer.apply(grads, trainable_variables=trainable_variables)

    def _stateful_handle_non_finite_grads(self):
        pass

    def _stateless_handle_finite_grads(self, optimizer_variables, grads, trainable_variables):
        own = len(self._variables)
        new_trainable, new_inner = self.inner_optimizer.stateless_apply(
            optimizer_variables[own:], grads, trainable_variables)
        return new_trainable, list(optimizer_variables[:own]) + list(new_inner)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        if not self.built:
            return super().stateless_apply(optimizer_variables, grads, trainable_variables)
        # The step on zeroed gradients, then the old values where they were not finite. The
        # parent's `lax.cond` compiled a LARS step differently: 1e-5 off the bare one in 8 steps.
        finite = self.check_finite(grads)
        new_trainable, new_state = self._stateless_handle_finite_grads(
            optimizer_variables, _zeroed(grads, finite), trainable_variables)
        return _kept(finite, new_trainable, trainable_variables), _kept(
            finite, new_state, optimizer_variables)

    def _tf_apply(self, grads, trainable_variables=None):
        if backends.active().in_strategy_scope():  # the parent's cond, taken across replicas
            return super()._tf_apply(grads, trainable_variables)
        # One device: the step on zeroed gradients, then the old values put back where the
        # gradients were not finite. The parent's `tf.cond` rounded a LARS step differently
        # from run to run (one ulp in a norm), which broke `enable_determinism()`.
        finite = self.check_finite(grads)  # (`apply` has built both optimizers)
        state = list(self.inner_optimizer.variables) + list(
            self.inner_optimizer._trainable_variables if trainable_variables is None
            else trainable_variables)
        before = [ops.copy(v.value) for v in state]  # snapshots, not aliases
        self.inner_optimizer.apply(_zeroed(grads, finite), trainable_variables)
        for variable, value in zip(state, before, strict=True):
            variable.assign(ops.where(finite, variable, value))

    def _common_apply(self, grads, trainable_variables=None):
        if keras.backend.backend() == "jax":
            # An eager JAX `apply` cannot assign inside `lax.cond`; JAX's `fit` takes the
            # stateless path above.
            if bool(self.check_finite(grads)):
                self._stateful_handle_finite_grads(grads, trainable_variables)
            return
        super()._common_apply(grads, trainable_variables)

    def check_finite(self, grads):
        grads = [g for g in grads if g is not None]
        if not grads:
            return ops.convert_to_tensor(True)
        native = backends.active().native_ops()
        if native is not None:  # PyTorch: one foreach kernel, not two per gradient
            finite = native.all_finite(grads)
        else:
            finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in grads]))
        # Summed over replicas (gradients are checked before they are): all take one branch.
        bad = ops.cast(ops.logical_not(finite), "float32")
        return ops.equal(backends.active().all_reduce_sum(bad), 0.0)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """The inner optimizer's `exclude_from_weight_decay`."""
        self.inner_optimizer.exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    # Saved as the inner optimizer alone (the scale is fixed): a checkpoint holds its state
    # once, in the layout of the bare optimizer, so the two load each other's checkpoints.
    def save_own_variables(self, store):
        self.inner_optimizer.save_own_variables(store)

    def load_own_variables(self, store):
        self.inner_optimizer.load_own_variables(store)

    def __dir__(self):  # Keras's saving walks `dir()`: not the inner optimizer a second time
        return [name for name in super().__dir__() if name != "inner_optimizer"]

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)


def _zeroed(grads, finite):
    return [g if g is None else ops.where(finite, g, ops.zeros_like(g)) for g in grads]


def _kept(finite, new, old):
    return [ops.where(finite, n, o) for n, o in zip(new, old, strict=True)]
