"""The SwAV model: an encoder, a projection head and prototypes, trained with `model.fit`."""

import numbers

import keras
from keras import ops

from swav_keras import backends
from swav_keras.callbacks.terminate_on_non_finite import TerminateOnNonFinite
from swav_keras.crop_inputs import check_batch_sizes, crops_as_list, resolution_groups
from swav_keras.layers.feature_queue import FeatureQueue
from swav_keras.layers.l2_normalize import L2Normalize
from swav_keras.layers.projection_head import ProjectionHead
from swav_keras.layers.prototypes import Prototypes
from swav_keras.layers.sync_batch_normalization import synchronize_batch_normalization
from swav_keras.multi_worker_fit import MultiWorkerFit
from swav_keras.optimizers.skip_non_finite import SkipNonFiniteOptimizer
from swav_keras.swav_loss import assignment_codes, check_crops_for_assign, swapped_prediction
from swav_keras.validation import check_float, check_int, check_int_sequence


@keras.saving.register_keras_serializable(package="swav_keras")
class SwAV(MultiWorkerFit, keras.Model):
    """SwAV self-supervised training of an encoder, with plain `compile` and `fit`.

    Each training element holds V crops of the same B images, `((crop_0, ..., crop_{V-1}),)`
    or a dict of crops (taken in the natural order of their keys, e.g. `crop_0 ... crop_10`),
    high-resolution crops first; with `augmentation`, a batch of raw images that the model
    crops itself. Crops of the same resolution are concatenated and run through
    the encoder together (one pass per resolution group), the projection head and the
    prototypes run once on all of them, and the loss predicts each assignment crop's
    Sinkhorn codes from every other crop (`swav_loss`). Prototypes are kept at unit norm by a
    constraint, optionally frozen for the first steps; a feature queue supplies extra samples
    to Sinkhorn for small batches. Only `model.encoder` is meant to be kept: save it alone as
    `.keras`.

    With several prototype heads (`num_prototypes=(K1, K2, ...)`, as the original's
    `--nmb_prototypes 3000 3000 3000`), each head scores the same embeddings against its own
    prototypes and gets its own Sinkhorn codes (with a queue, each head re-scores the one
    shared queue of embeddings); the loss is the mean of the heads' swapped losses, as the
    original averages its heads (`loss /= len(args.nmb_prototypes)`). `model.prototypes` is the
    first head, `model.extra_prototypes` the others, `model.prototype_heads()` all of them.

    The training step is Keras's own on every backend: the model overrides `compute_loss`
    only. Its state (step counter, queue) lives in non-trainable variables, so checkpoints
    restore it. Under a mixed precision policy the encoder runs in float16 or bfloat16 while the
    head, prototypes, Sinkhorn and loss run in float32. A batch holding NaN or Inf, or whose
    loss overflows, changes nothing (weights, optimizer state, BatchNorm statistics, queue:
    `compile` wraps the optimizer in a `SkipNonFiniteOptimizer`) and `fit` raises a
    `ValueError` naming the step (see `TerminateOnNonFinite`, added to `fit`'s callbacks
    automatically).

    Logged metrics besides `loss`: `prototypes_used`, the number of prototypes that are the
    best match of at least one sample of the batch (first assignment crop), and
    `assignment_entropy`, the entropy (nats) of the batch's mean predicted assignment; both
    fall towards 1 and 0 when training collapses onto few prototypes. With several heads both,
    and the `prototype_counts` that `AssignmentMonitor` reads, are the first head's.

    Like Keras's own `compute_loss`, the loss includes `model.losses` (weight regularisers and
    `add_loss` terms of the encoder or any other sub-layer).

    Args:
        encoder: a `keras.Model` mapping images `[B, H, W, C]` to features `[B, D]`; any input
            size (e.g. `swav_keras.backbones.SmallResNet`).
        projection_dim: positive int, embedding dimension. Defaults to `128`.
        hidden_dim: int >= 0, hidden width of the projection head (0: linear head).
            Defaults to `2048`.
        num_prototypes: positive int, K, for one head; or a non-empty list or tuple of
            positive ints, one head of K_i prototypes each. Defaults to `3000`.
        temperature: positive float, softmax temperature of the predictions. Defaults to `0.1`.
        epsilon: positive float, Sinkhorn's regularisation. Defaults to `0.05`.
        sinkhorn_iterations: positive int. Defaults to `3`.
        crops_for_assign: indices of the crops whose codes are predicted. Defaults to `(0, 1)`.
        queue_length: int >= 0, embeddings kept per assignment crop (0: no queue), over all
            replicas; a multiple of the batch size. Defaults to `0`.
        queue_start_step: int >= 0, the training step from which the queue is filled (it is
            used once full). Defaults to `0`.
        freeze_prototypes_steps: int >= 0, steps during which the prototypes get no update.
            Defaults to `0`.
        sync_batchnorm: `"auto"`, `True` or `False`: whether the BatchNorm layers of the
            encoder and the projection head compute batch statistics over the global batch
            (as the original's `--sync_bn`). `"auto"` synchronises them when the model is
            built for several replicas (a tf.distribute strategy's scope, torch.distributed
            with several processes; JAX's GSPMD statistics are global already), so a
            distributed run trains what one device would. The encoder's layers are
            synchronised in place and keep their class: it saves as plain BatchNorm.
            Defaults to `"auto"`.
        augmentation: a Keras layer mapping a batch of raw images to the tuple of crops
            (`swav_keras.layers.MultiCropAugmentation`), or `None`. When given, `fit` takes
            batches of raw images `[B, H, W, C]` (e.g. `swav_keras.data.ImageBatches`) and
            the crops are made inside the training step, on the accelerator and without
            tf.data. Defaults to `None`: `fit` takes the crops.
        hidden_layers: positive int, the projection head's number of hidden
            `Linear -> BatchNorm -> ReLU` blocks (see `swav_keras.layers.ProjectionHead`); 1 is
            the original's head. Defaults to `1`.
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Example:

    ```python
    import keras
    import swav_keras

    encoder = swav_keras.backbones.SmallResNet(width=16, input_shape=(None, None, 1))
    model = swav_keras.SwAV(encoder, projection_dim=64, hidden_dim=512, num_prototypes=128)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(dataset, epochs=10)  # e.g. `swav_keras.data.multicrop_dataset`
    model.encoder.save("encoder.keras")
    ```

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020.
    """

    def __init__(
        self,
        encoder,
        projection_dim=128,
        hidden_dim=2048,
        num_prototypes=3000,
        temperature=0.1,
        epsilon=0.05,
        sinkhorn_iterations=3,
        crops_for_assign=(0, 1),
        queue_length=0,
        queue_start_step=0,
        freeze_prototypes_steps=0,
        sync_batchnorm="auto",
        augmentation=None,
        hidden_layers=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(
                f"`encoder` must be a keras.Model; received encoder of type "
                f"{type(encoder).__name__}."
            )
        self.encoder = encoder
        self.projection_dim = check_int("projection_dim", projection_dim, minimum=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, minimum=0)
        self.hidden_layers = check_int("hidden_layers", hidden_layers, minimum=1)
        self.num_prototypes = _check_num_prototypes(num_prototypes)
        head_sizes = self._head_sizes()
        self.temperature = check_float("temperature", temperature, positive=True)
        self.epsilon = check_float("epsilon", epsilon, positive=True)
        self.sinkhorn_iterations = check_int("sinkhorn_iterations", sinkhorn_iterations, minimum=1)
        self.crops_for_assign = check_int_sequence("crops_for_assign", crops_for_assign, minimum=0)
        if len(set(self.crops_for_assign)) != len(self.crops_for_assign):
            raise ValueError(
                "`crops_for_assign` must not repeat a crop; "
                f"received crops_for_assign={tuple(crops_for_assign)!r}."
            )
        self.queue_length = check_int("queue_length", queue_length, minimum=0)
        self.queue_start_step = check_int("queue_start_step", queue_start_step, minimum=0)
        self.freeze_prototypes_steps = check_int(
            "freeze_prototypes_steps", freeze_prototypes_steps, minimum=0
        )

        if not isinstance(sync_batchnorm, bool) and sync_batchnorm != "auto":
            raise TypeError(
                "`sync_batchnorm` must be 'auto' or a bool; "
                f"received sync_batchnorm={sync_batchnorm!r}."
            )
        self.sync_batchnorm = sync_batchnorm
        synchronized = sync_batchnorm is True or (
            sync_batchnorm == "auto" and backends.active().num_replicas() > 1
        )
        if synchronized:
            synchronize_batch_normalization(encoder)
        if augmentation is not None and not isinstance(augmentation, keras.layers.Layer):
            raise TypeError(
                "`augmentation` must be a keras.layers.Layer (e.g. "
                "swav_keras.layers.MultiCropAugmentation) or None; received augmentation of "
                f"type {type(augmentation).__name__}."
            )
        self.augmentation = augmentation

        # The head and prototypes run in float32 under any dtype policy: they are cheap next to
        # the encoder, and Sinkhorn then sees full-precision scores (a float16 or bfloat16
        # rounding of the scores alone moves the codes by 1e-3 to 1e-1).
        self.projection_head = ProjectionHead(
            hidden_dim,
            projection_dim,
            sync_batchnorm=synchronized,
            hidden_layers=hidden_layers,
            dtype="float32",
            name="projection_head",
        )
        self.l2_normalize = L2Normalize(dtype="float32", name="l2_normalize")
        # The first head keeps the single head's name, so its variable paths are the same.
        self.prototypes = Prototypes(head_sizes[0], dtype="float32", name="prototypes")
        self.extra_prototypes = [
            Prototypes(k, dtype="float32", name=f"prototypes_{h}")
            for h, k in enumerate(head_sizes[1:], start=1)
        ]
        self.queue = None
        if self.queue_length:
            # On several replicas each keeps its share of the queue (tf.distribute replicas,
            # torch processes); under JAX's GSPMD the one queue is already global.
            replicas = backends.active().num_replicas()
            if self.queue_length % replicas:
                raise ValueError(
                    f"`queue_length` must be a multiple of the {replicas} replicas; received "
                    f"queue_length={self.queue_length}."
                )
            self.queue = FeatureQueue(
                len(self.crops_for_assign), self.queue_length // replicas, projection_dim,
                name="queue",
            )
        self.step = self.add_weight(
            name="step", shape=(), initializer="zeros", dtype="int32", trainable=False
        )
        # The step whose input held NaN or Inf (-1: none yet), read by TerminateOnNonFinite.
        self.non_finite_input_step = self.add_weight(
            name="non_finite_input_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int32",
            trainable=False,
        )
        # Samples won by each prototype of the first head (argmax of the first assignment crop's
        # scores) since the last reset; read and reset by `AssignmentMonitor` once per epoch.
        self.prototype_counts = self.add_weight(
            name="prototype_counts",
            shape=(head_sizes[0],),
            initializer="zeros",
            dtype="float32",
            trainable=False,
        )
        self.prototypes_used_tracker = keras.metrics.Mean(name="prototypes_used")
        self.assignment_entropy_tracker = keras.metrics.Mean(name="assignment_entropy")

    # ----------------------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        """Embeddings and prototype scores of every crop.

        Returns:
            A dict with `"embeddings"` (list of `[B, projection_dim]`, one per crop),
            `"scores"` (with an int `num_prototypes`: list of `[B, K]`, one per crop; with a
            sequence: one such list per head, `scores[h][crop]` of shape `[B, K_h]`) and
            `"non_finite"` (boolean scalar: some input held NaN or Inf); when training, also
            `"statistics_before"`, the BatchNorm statistics as they were before this call.
        """
        statistics_before = None
        if training:  # copies: a step whose input holds NaN or Inf puts them back
            statistics_before = [ops.copy(ops.convert_to_tensor(v)) for v in self._statistics()]
        if self.augmentation is not None:
            inputs = self.augmentation(_images_of(inputs))
        crops = [ops.cast(c, self.compute_dtype) for c in crops_as_list(inputs)]
        num_crops = len(crops)
        check_crops_for_assign(self.crops_for_assign, num_crops)
        self._check_queue_fits(check_batch_sizes(crops))

        non_finite = ops.logical_not(ops.all(ops.stack([ops.all(ops.isfinite(c)) for c in crops])))
        crops = [ops.where(ops.isfinite(c), c, ops.zeros_like(c)) for c in crops]

        features = []
        for group in resolution_groups(crops):
            batch = ops.concatenate(group, axis=0) if len(group) > 1 else group[0]
            features.append(self.encoder(batch, training=training))
        features = ops.concatenate(features, axis=0) if len(features) > 1 else features[0]
        embeddings = self.l2_normalize(self.projection_head(features, training=training))
        frozen = None
        if self.freeze_prototypes_steps:
            frozen = ops.less(ops.convert_to_tensor(self.step), self.freeze_prototypes_steps)
        scores = [
            ops.split(head(embeddings, frozen=frozen), num_crops, axis=0)
            for head in self.prototype_heads()
        ]
        outputs = {
            "embeddings": ops.split(embeddings, num_crops, axis=0),
            "scores": scores if self._several_heads() else scores[0],
            "non_finite": non_finite,
        }
        if statistics_before is not None:
            outputs["statistics_before"] = statistics_before
        return outputs

    def _statistics(self):
        """The encoder's and head's non-trainable float variables: BatchNorm statistics."""
        variables = [*self.encoder.non_trainable_variables,
                     *self.projection_head.non_trainable_variables]
        return [v for v in variables if "float" in str(v.dtype)]

    def prototype_heads(self):
        """The `Prototypes` layers, one per head: `[model.prototypes, *model.extra_prototypes]`."""
        return [self.prototypes, *self.extra_prototypes]

    def _head_sizes(self):
        return self.num_prototypes if self._several_heads() else (self.num_prototypes,)

    def _several_heads(self):
        return isinstance(self.num_prototypes, tuple)

    # -------------------------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """SwAV's swapped prediction loss (mean over heads) plus `self.losses` (regularisers);
        updates the step counter and queue when training."""
        del x, y, sample_weight
        scores, embeddings = y_pred["scores"], y_pred["embeddings"]
        adapter = backends.active()
        step = ops.convert_to_tensor(self.step)
        use_queue = None
        if self.queue is not None:
            use_queue = ops.logical_and(
                self.queue.is_full(), ops.greater_equal(step, self.queue_start_step)
            )

        head_scores = scores if self._several_heads() else [scores]
        head_losses = []
        for head, crop_scores in zip(self.prototype_heads(), head_scores):
            codes = self._codes(head, [crop_scores[i] for i in self.crops_for_assign], use_queue)
            head_losses.append(
                swapped_prediction(crop_scores, codes, self.crops_for_assign, self.temperature)
            )
        # The mean over heads, as the original (`loss /= len(args.nmb_prototypes)`).
        loss = head_losses[0]
        if len(head_losses) > 1:
            loss = sum(head_losses[1:], loss) / len(head_losses)
        extra_losses = self.losses
        if extra_losses:
            # Regularisers and `add_loss` terms, summed as by Keras's own `compute_loss`.
            loss = loss + sum(ops.sum(ops.cast(term, "float32")) for term in extra_losses)
        # Global over replicas: one replica's bad batch (input, or a loss that overflowed)
        # skips the whole step.
        bad = adapter.all_reduce_sum(ops.stack([
            ops.cast(y_pred["non_finite"], "float32"),
            ops.cast(ops.logical_not(ops.isfinite(loss)), "float32"),
        ]))
        non_finite = ops.greater(bad[0], 0.0)
        skipped = ops.greater(ops.sum(bad), 0.0)
        # A batch with NaN/Inf (its crops zeroed in `call`) or a loss that overflowed: NaN
        # loss and gradients, so the `SkipNonFiniteOptimizer` that `compile` installs skips it.
        loss = loss * ops.where(skipped, float("nan"), 1.0)

        won = self._track_assignments(head_scores[0][self.crops_for_assign[0]], adapter)
        if training:
            adapter.synchronize_gradients(self.trainable_variables)
            if "statistics_before" in y_pred:  # the BatchNorm statistics as before the batch
                for variable, before in zip(self._statistics(), y_pred["statistics_before"]):
                    variable.assign(ops.where(skipped, before, ops.convert_to_tensor(variable)))
            self.prototype_counts.assign(
                ops.convert_to_tensor(self.prototype_counts)
                + ops.where(skipped, ops.zeros_like(won), won)
            )
            if self.queue is not None:
                active = ops.logical_and(
                    ops.greater_equal(step, self.queue_start_step), ops.logical_not(skipped)
                )
                self.queue.push([embeddings[i] for i in self.crops_for_assign], active=active)
            first_bad = ops.logical_and(
                non_finite, ops.less(ops.convert_to_tensor(self.non_finite_input_step), 0)
            )
            self.non_finite_input_step.assign(
                ops.where(first_bad, step, ops.convert_to_tensor(self.non_finite_input_step))
            )
            self.step.assign(step + 1)
        # The regularisation term is scaled with the swapped loss, as Keras scales `self.losses`
        # (TF: 1/replicas, since gradients are summed; torch averages, JAX is global: 1), so a
        # regulariser counts once per step, as on one device.
        return loss * adapter.gradient_scale()

    def _codes(self, head, assign_scores, use_queue):
        """One head's Sinkhorn codes of the assignment crops, with the queue when `use_queue`."""
        codes = [
            assignment_codes(s, None, self.epsilon, self.sinkhorn_iterations)
            for s in assign_scores
        ]
        if use_queue is None:
            return codes
        queue_scores = self.queue.scores(head.kernel)
        with_queue = [
            assignment_codes(s, q, self.epsilon, self.sinkhorn_iterations)
            for s, q in zip(assign_scores, queue_scores)
        ]
        # Both, then a select, rather than `ops.cond`: Sinkhorn's all-reduces may not sit in a
        # conditional branch under tf.distribute (a cross-replica sync point).
        return [ops.where(use_queue, a, b) for a, b in zip(with_queue, codes)]

    def _track_assignments(self, scores, adapter):
        """Per-prototype wins over the global batch; updates the two assignment metrics."""
        scores = ops.stop_gradient(ops.cast(scores, "float32"))
        num_prototypes = self._head_sizes()[0]
        won = ops.sum(ops.one_hot(ops.argmax(scores, axis=-1), num_prototypes), axis=0)
        probabilities = ops.softmax(scores / self.temperature, axis=-1)
        # Sums over the global batch: K wins, K probabilities and the sample count.
        totals = adapter.all_reduce_sum(ops.concatenate(
            [won, ops.sum(probabilities, axis=0), ops.cast(ops.shape(scores)[:1], "float32")],
            axis=0,
        ))
        won = totals[:num_prototypes]
        mean_assignment = totals[num_prototypes:-1] / totals[-1]
        used = ops.sum(ops.cast(ops.greater(won, 0.0), "float32"))
        entropy = -ops.sum(mean_assignment * ops.log(mean_assignment + 1e-12))
        self.prototypes_used_tracker.update_state(used)
        self.assignment_entropy_tracker.update_state(entropy)
        return won

    def _check_queue_fits(self, batch_size):
        if self.queue is not None and batch_size and self.queue.length % batch_size:
            raise ValueError(
                "`queue_length` must be a multiple of the batch size; received "
                f"queue_length={self.queue_length} with batch size {batch_size}. Use e.g. "
                f"queue_length={max(1, self.queue_length // batch_size) * batch_size}."
            )

    # ------------------------------------------------------------------------------ keras
    def compile(self, *args, **kwargs):
        """`keras.Model.compile`; refuses `jit_compile=True` under the torch backend.

        Keras runs a torch `jit_compile=True` step through `torch.compile`, which breaks the
        SwAV step's graph in Keras's own layers (`ZeroPadding2D` -> `ops.pad` -> `auto_name`)
        and recompiles at every break (issue 27; `benchmarks/RESULTS.md`). Train without it
        (the default `"auto"` is eager under torch); `swav_keras.layers.to_native_layers` is
        what makes the torch step fast.
        """
        jit_compile = args[7] if len(args) > 7 else kwargs.get("jit_compile", "auto")
        if jit_compile is True and keras.backend.backend() == "torch":
            raise ValueError(
                "`jit_compile` must be False or 'auto' with the torch backend; received "
                "jit_compile=True. torch.compile recompiles the SwAV step over and over (graph "
                "breaks in Keras's ZeroPadding2D -> ops.pad -> auto_name) and no step finishes; "
                "for speed under torch use swav_keras.layers.to_native_layers(encoder)."
            )
        super().compile(*args, **kwargs)
        # A step whose input or loss is NaN or Inf changes no weight or optimizer state (under
        # mixed_float16, Keras's LossScaleOptimizer, already in place, skips it);
        # `compute_loss` puts back the BatchNorm statistics, queue and prototype counts.
        if self.optimizer is not None and not isinstance(
            self.optimizer, keras.optimizers.LossScaleOptimizer
        ):
            self.optimizer = SkipNonFiniteOptimizer(self.optimizer)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with a `TerminateOnNonFinite` callback added if none is given."""
        if len(args) > 5:
            args = list(args)
            args[5] = _with_guard(args[5])
        else:
            kwargs["callbacks"] = _with_guard(kwargs.get("callbacks"))
        return super().fit(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "projection_dim": self.projection_dim,
                "hidden_dim": self.hidden_dim,
                "hidden_layers": self.hidden_layers,
                "num_prototypes": (
                    list(self.num_prototypes) if self._several_heads() else self.num_prototypes
                ),
                "temperature": self.temperature,
                "epsilon": self.epsilon,
                "sinkhorn_iterations": self.sinkhorn_iterations,
                "crops_for_assign": list(self.crops_for_assign),
                "queue_length": self.queue_length,
                "queue_start_step": self.queue_start_step,
                "freeze_prototypes_steps": self.freeze_prototypes_steps,
                "sync_batchnorm": self.sync_batchnorm,
                "augmentation": (
                    None if self.augmentation is None
                    else keras.saving.serialize_keras_object(self.augmentation)
                ),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if config.get("augmentation") is not None:
            config["augmentation"] = keras.saving.deserialize_keras_object(config["augmentation"])
        return cls(**config)


def _check_num_prototypes(value):
    """An int as it is (one head); a list or tuple of positive ints as a tuple (one head each)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_int("num_prototypes", value, minimum=1)
    message = (
        "`num_prototypes` must be a positive integer or a non-empty list or tuple of positive "
        f"integers; received num_prototypes={value!r}."
    )
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in value
    ):
        raise TypeError(message)
    if not value or min(value) < 1:
        raise ValueError(message)
    return tuple(int(k) for k in value)


def _images_of(inputs):
    """The image batch of an element: the array itself, or the one entry of a 1-tuple."""
    if isinstance(inputs, (tuple, list)):
        if len(inputs) != 1:
            raise ValueError(
                "With `augmentation`, each element must be a batch of raw images [B, H, W, C] "
                f"(or a 1-tuple of it); received a sequence of {len(inputs)} entries."
            )
        return inputs[0]
    return inputs


def _with_guard(callbacks):
    callbacks = list(callbacks or [])
    if not any(isinstance(c, TerminateOnNonFinite) for c in callbacks):
        callbacks.append(TerminateOnNonFinite())
    return callbacks
