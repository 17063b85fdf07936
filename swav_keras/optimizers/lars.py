"""LARS: momentum SGD with a layer-wise trust ratio, as SwAV's `LARC(SGD)` from NVIDIA apex."""

import re

import keras
from keras import ops

from swav_keras import backends
from swav_keras.keras_internals import optimizer_variable_index, optimizer_variable_key
from swav_keras.validation import check_float


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a boolean; received {name}={value!r}.")
    return value


@keras.saving.register_keras_serializable(package="swav_keras")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling over PyTorch-style momentum SGD.

    Large-batch self-supervised training (SwAV trains at batch 4096 with learning rate 4.8)
    diverges with plain SGD; LARS scales each layer's step by a trust ratio so that it stays
    a fixed fraction of the layer's weight norm. This is the original SwAV optimizer,
    `LARC(SGD(lr, momentum=0.9, weight_decay=wd), trust_coefficient=0.001, clip=False)` of
    NVIDIA apex, written with `keras.ops` so it runs identically on every backend. For each
    adapted variable `p` with gradient `g`, when `||p|| > 0` and `||g|| > 0`:

    ```
    local_lr = trust_coefficient * ||p|| / (||g|| + ||p|| * weight_decay + epsilon)
    if clip:
        local_lr = min(local_lr / learning_rate, 1)
    g = (g + weight_decay * p) * local_lr
    ```

    (otherwise `g` is used as is, without weight decay), then momentum SGD as in PyTorch:
    `buf = momentum * buf + g; p -= learning_rate * buf` (with `nesterov`:
    `p -= learning_rate * (g + momentum * buf)`). The learning rate multiplies the momentum
    buffer, not the gradient, so a schedule changes the step at once as in PyTorch.

    Variables excluded from layer adaptation take a plain momentum SGD step: no weight decay,
    no trust ratio. With `exclude_bias_and_norm=True` these are the variables of rank <= 1
    (biases, BatchNorm gamma and beta), as solo-learn's `exclude_bias_n_norm`; more can be
    excluded with `exclude_from_layer_adaptation()`. The original SwAV adapts every variable:
    `exclude_bias_and_norm=False` reproduces it exactly.

    The weight decay is coupled into the gradient (L2 regularisation scaled by the trust
    ratio), so it is not handed to the base optimizer, whose decoupled weight decay would apply
    it a second time: the base class sees `weight_decay=None`, `lars_weight_decay` holds the
    value and `get_config()` reports it as `weight_decay`.

    Args:
        learning_rate: float >= 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable returning the learning rate. Defaults to `0.1`.
        momentum: float in [0, 1], PyTorch's SGD momentum (0: no momentum buffer).
            Defaults to `0.9`.
        weight_decay: float >= 0, coupled L2 weight decay of the adapted variables.
            Defaults to `1e-6`.
        trust_coefficient: positive float, the trust coefficient (eta) of the trust ratio.
            Defaults to `0.001`.
        epsilon: float >= 0 added to the trust ratio's denominator. Defaults to `1e-8`.
        clip: bool, LARC's clipping mode: the effective rate `learning_rate * local_lr`
            becomes `min(local_lr, learning_rate)`. Defaults to `False`.
        nesterov: bool, Nesterov momentum as in PyTorch (needs `momentum > 0`).
            Defaults to `False`.
        exclude_bias_and_norm: bool, skip weight decay and the trust ratio for variables of
            rank <= 1. Defaults to `True`.
        name: name of the optimizer. Defaults to `"lars"`.
        **kwargs: base optimizer arguments (`clipnorm`, `global_clipnorm`, `use_ema`,
            `loss_scale_factor`, `gradient_accumulation_steps`, ...).

    Example:

    >>> import keras
    >>> from swav_keras.optimizers import LARS
    >>> schedule = keras.optimizers.schedules.CosineDecay(0.0, 1000, warmup_target=4.8,
    ...                                                    warmup_steps=100)
    >>> optimizer = LARS(learning_rate=schedule, weight_decay=1e-6)
    >>> optimizer.exclude_from_layer_adaptation(var_names=["prototypes"])

    Reference:
        You et al., "Large Batch Training of Convolutional Networks", arXiv:1708.03888, 2017.
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=1e-6,
        trust_coefficient=0.001,
        epsilon=1e-8,
        clip=False,
        nesterov=False,
        exclude_bias_and_norm=True,
        name="lars",
        **kwargs,
    ):
        if not callable(learning_rate):
            learning_rate = check_float("learning_rate", learning_rate, minimum=0.0)
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        self.momentum = check_float("momentum", momentum, minimum=0.0, maximum=1.0)
        self.lars_weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.trust_coefficient = check_float(
            "trust_coefficient", trust_coefficient, positive=True
        )
        self.epsilon = check_float("epsilon", epsilon, minimum=0.0)
        self.clip = _check_bool("clip", clip)
        self.nesterov = _check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "`nesterov` must be False when momentum is 0; received nesterov=True."
            )
        self.exclude_bias_and_norm = _check_bool("exclude_bias_and_norm", exclude_bias_and_norm)
        self._excluded_keys = set()
        self._excluded_names = []
        self._excluded_pattern = None

    def exclude_from_layer_adaptation(self, var_list=None, var_names=None):
        """Excludes variables from weight decay and the trust ratio (plain momentum SGD).

        Call it before the optimizer is built (before the first `fit` step). The exclusion
        adds to the rank rule of `exclude_bias_and_norm`; a new call replaces the exclusions
        of an earlier one, as Keras's `exclude_from_weight_decay`. `var_names` are part of
        `get_config()` (key `exclude_from_layer_adaptation_names`), so they survive saving a
        compiled model; `var_list` does not.

        Args:
            var_list: variables to exclude. Defaults to `None`.
            var_names: strings; a variable whose path (e.g. `"swav/prototypes/kernel"`)
                contains any of them is excluded. Defaults to `None`.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_layer_adaptation()` must be called before the optimizer is "
                "built; received a built optimizer."
            )
        self._excluded_keys = {optimizer_variable_key(self, v) for v in var_list or ()}
        if isinstance(var_names, str):
            var_names = [var_names]
        names = sorted(set(var_names or ()))
        self._excluded_names = names
        self._excluded_pattern = "|".join(re.escape(n) for n in names) if names else None

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Same as `exclude_from_layer_adaptation`: in LARS the two go together."""
        self.exclude_from_layer_adaptation(var_list=var_list, var_names=var_names)

    def _adapts(self, variable):
        if self.exclude_bias_and_norm and len(variable.shape) <= 1:
            return False
        if optimizer_variable_key(self, variable) in self._excluded_keys:
            return False
        path = getattr(variable, "path", variable.name)
        return self._excluded_pattern is None or not re.search(self._excluded_pattern, path)

    def build(self, variables):
        """Creates the momentum buffers and decides, per variable, whether it is adapted."""
        if self.built:
            return
        super().build(variables)
        # Decided here on the Keras variables: TensorFlow hands raw tf.Variables to update_step.
        self._adapted = [self._adapts(variable) for variable in variables]
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def adapts(self, variable):
        """Returns whether `variable` takes weight decay and the trust ratio (after `build`)."""
        return self._adapted[optimizer_variable_index(self, variable)]

    # Overrides `keras_internals.BACKEND_UPDATE_STEP_HOOK` of Keras's optimizer.
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """All variables at once through the adapter's `native_ops().lars_update` where the
        backend has one (PyTorch: `torch._foreach_*` kernels, instead of a dozen small ops per
        variable); `update_step` per variable elsewhere (and the backend's own loop, e.g.
        TensorFlow's under `tf.distribute`)."""
        native = backends.active().native_ops()
        if native is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        indices = [optimizer_variable_index(self, v) for v in trainable_variables]
        native.lars_update(
            trainable_variables,
            grads,
            [self.momentums[i] for i in indices] if self.momentum != 0 else [],
            [self._adapted[i] for i in indices],
            learning_rate,
            momentum=self.momentum,
            weight_decay=self.lars_weight_decay,
            trust_coefficient=self.trust_coefficient,
            epsilon=self.epsilon,
            clip=self.clip,
            nesterov=self.nesterov,
        )

    def update_step(self, gradient, variable, learning_rate):
        """One LARC + momentum SGD step of `variable`."""
        dtype = variable.dtype
        index = optimizer_variable_index(self, variable)
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self._adapted[index]:
            weight_decay = ops.cast(self.lars_weight_decay, dtype)
            param = ops.convert_to_tensor(variable)
            param_norm = ops.sqrt(ops.sum(ops.square(param)))
            grad_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            local_lr = (
                self.trust_coefficient
                * param_norm
                / (grad_norm + param_norm * weight_decay + self.epsilon)
            )
            if self.clip:
                # min(local_lr / lr, 1) written so that lr = 0 gives 1 (as apex) without 0 / 0.
                safe_lr = ops.where(learning_rate > 0, learning_rate, ops.ones_like(learning_rate))
                local_lr = ops.where(local_lr < learning_rate, local_lr / safe_lr, 1.0)
            adapted = ops.logical_and(param_norm > 0, grad_norm > 0)
            gradient = ops.where(
                adapted, (gradient + weight_decay * param) * local_lr, gradient
            )
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, dtype)
            buffer = self.momentums[index]
            new_buffer = ops.add(ops.multiply(momentum, buffer), gradient)
            self.assign(buffer, new_buffer)
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(momentum, new_buffer))
            else:
                gradient = new_buffer
        self.assign_sub(variable, ops.multiply(learning_rate, gradient))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "trust_coefficient": self.trust_coefficient,
                "epsilon": self.epsilon,
                "clip": self.clip,
                "nesterov": self.nesterov,
                "exclude_bias_and_norm": self.exclude_bias_and_norm,
                "exclude_from_layer_adaptation_names": list(self._excluded_names),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        names = config.pop("exclude_from_layer_adaptation_names", None)
        optimizer = super().from_config(config, custom_objects=custom_objects)
        if names:
            optimizer.exclude_from_layer_adaptation(var_names=names)
        return optimizer
