"""Fine-tuning an encoder with a linear layer under plain `fit`: two learning rates."""

import math

import keras
import numpy as np
from keras import ops

from swav_keras.evaluation import top_k_accuracy
from swav_keras.keras_internals import optimizer_variable_index, optimizer_variable_key


class TwoRateSGD(keras.optimizers.Optimizer):
    """Momentum SGD (PyTorch's form) with coupled weight decay and two learning rates.

    Keras has no parameter groups, so the optimizer's `learning_rate` is the last layer's and
    every other variable's step is multiplied by `trunk_scale` (trunk rate / last-layer rate):
    a per-variable factor decided in `build()` on the Keras variables (TensorFlow hands raw
    tf.Variables to `update_step`) and looked up there by the variable's index. A plain
    `Optimizer` whose `update_step` uses `keras.ops` only, it runs unchanged under `fit` on
    TensorFlow, JAX (stateless apply) and PyTorch. A schedule of `learning_rate` (here a
    `LearningRateScheduler`) moves both rates together, as PyTorch's `MultiStepLR` does with
    its parameter groups. Per step: `buf = momentum * buf + g + weight_decay * w`, then
    `w -= rate * buf`, as `torch.optim.SGD(momentum=, weight_decay=)`.

    Args:
        learning_rate: float >= 0, the last layer's rate.
        trunk_scale: float >= 0, the other variables' rate as a multiple of it; 0 freezes
            them.
        head_variables: the last layer's variables (not part of `get_config()`: the recipe
            builds the optimizer anew each time).
        momentum: float in [0, 1]. Defaults to `0.9`.
        weight_decay: float >= 0, coupled (L2) decay on every variable. Defaults to `0.0`.
        name: name of the optimizer. Defaults to `"two_rate_sgd"`.
    """

    def __init__(self, learning_rate, trunk_scale, head_variables, momentum=0.9,
                 weight_decay=0.0, name="two_rate_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.trunk_scale = float(trunk_scale)
        self.momentum = float(momentum)
        self.coupled_weight_decay = float(weight_decay)
        self._head_keys = {optimizer_variable_key(self, v) for v in head_variables}

    def build(self, variables):
        """Creates the momentum buffers and the per-variable rate factors."""
        if self.built:
            return
        super().build(variables)
        self._scales = [1.0 if optimizer_variable_key(self, v) in self._head_keys
                        else self.trunk_scale for v in variables]
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        """One momentum step of `variable` at its own rate."""
        index = optimizer_variable_index(self, variable)
        dtype = variable.dtype
        rate = ops.cast(learning_rate, dtype) * self._scales[index]
        gradient = ops.cast(gradient, dtype)
        if self.coupled_weight_decay:
            gradient = gradient + self.coupled_weight_decay * ops.convert_to_tensor(variable)
        buffer = self.momentums[index]
        self.assign(buffer, self.momentum * ops.convert_to_tensor(buffer) + gradient)
        self.assign_sub(variable, rate * ops.convert_to_tensor(buffer))

    def get_config(self):
        config = super().get_config()
        config.update(trunk_scale=self.trunk_scale, momentum=self.momentum,
                      weight_decay=self.coupled_weight_decay)
        return config


class LabelledBatches(keras.utils.PyDataset):
    """Seeded batches of `(images, labels)` (images alone without labels), optionally with
    random shifts of up to 1/8 of the side (zero padding) and horizontal flips."""

    def __init__(self, images, labels, batch_size, seed=0, augment=False, shuffle=False):
        super().__init__()
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.shuffle, self._epoch = shuffle, 0
        self._order = self._permutation()

    def _permutation(self):
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self._epoch]).permutation(len(self.images))

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = np.asarray(self.images[rows], dtype="float32")
        if self.augment:
            images = shift_and_flip(images, np.random.default_rng([self.seed, self._epoch,
                                                                   index, 7]))
        if self.labels is None:
            return images
        return images, np.asarray(self.labels[rows]).astype("int32")

    def on_epoch_end(self):
        self._epoch += 1
        self._order = self._permutation()


def shift_and_flip(images, rng):
    """Each image `[H, W, C]` of the batch shifted by up to `H // 8`, `W // 8` pixels (zero
    padding, as the usual small-image `RandomCrop(padding=)`), and flipped with p = 0.5."""
    n, height, width = images.shape[:3]
    pad_y, pad_x = max(1, height // 8), max(1, width // 8)
    padded = np.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)))
    dy = rng.integers(0, 2 * pad_y + 1, n)
    dx = rng.integers(0, 2 * pad_x + 1, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out


def train_classifier(trunk, train, test, num_classes, epochs=20, batch_size=64,
                     trunk_learning_rate=0.02, head_learning_rate=0.02, decay_epochs=(12, 16),
                     decay_factor=0.2, weight_decay=5e-4, augment=True, seed=0,
                     verbose="auto", callbacks=()):
    """Trains `trunk` (in place) and a new linear layer on `train = (images, labels)`; returns
    `({"top1", "top5", "train_loss"}, the classifier)`: accuracies on test, the last epoch's
    mean training loss. Arguments as `recipes.finetune`'s flags; `callbacks` are added to
    `fit`'s."""
    inputs = keras.Input(trunk.input_shape[1:], name="images")
    head = keras.layers.Dense(
        num_classes, name="linear", bias_initializer="zeros",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed))
    classifier = keras.Model(inputs, head(trunk(inputs)), name="fine_tuned")
    # Two rates under plain `fit` on every backend: the head's rate is the optimizer's, each
    # other variable's step is scaled by trunk / head (TwoRateSGD), so one schedule moves both.
    classifier.compile(
        optimizer=TwoRateSGD(head_learning_rate, trunk_learning_rate / head_learning_rate,
                             head.trainable_variables, momentum=0.9,
                             weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )

    def step_decay(epoch):  # MultiStepLR: epochs 0..d-1 at the rate, d.. at rate * factor
        return head_learning_rate * decay_factor ** sum(epoch >= d for d in decay_epochs)

    history = classifier.fit(
        LabelledBatches(*train, batch_size, seed, augment=augment, shuffle=True),
        epochs=epochs, shuffle=False, verbose=verbose,
        callbacks=[keras.callbacks.LearningRateScheduler(step_decay), *callbacks],
    )
    logits = classifier.predict(LabelledBatches(test[0], None, 256), verbose=0)
    scores = {"top1": top_k_accuracy(logits, test[1], k=1),
              "top5": top_k_accuracy(logits, test[1], k=5),
              "train_loss": float(history.history["loss"][-1])}
    return scores, classifier
