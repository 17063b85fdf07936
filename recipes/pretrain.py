r"""SwAV multi-crop pretraining with `model.fit`, on any Keras backend.

Command (the CPU default, Fashion-MNIST from Debian's `dataset-fashion-mnist` files):

    KERAS_BACKEND=jax python -m recipes.pretrain --config=fashion_mnist --workdir=runs/fmnist

Other configurations: `--config=cifar10`, `--config=imagenet_resnet50_800ep` and
`--config=imagenet_resnet50_bs256` (with `--data_dir` holding tfds's `imagenet2012`); see
`recipes/configs.py`. Any field of the configuration can be overridden by a flag of the same
name, e.g. `--epochs=20 --num_prototypes=300 --queue_length=3840`.

Crops inside the model: `--augment_in_model` makes the crops in the compiled training step
(`swav_keras.layers.MultiCropAugmentation`), on the accelerator; with Fashion-MNIST, or an
image folder, nothing then needs TensorFlow (`KERAS_BACKEND=jax` or `torch` on a machine
without it: the folder streams from disk, read by Pillow in threads a few batches ahead;
where TensorFlow is installed it streams through tf.data instead).

Several devices: `--distribution=auto|none|mirrored|multi_worker|tpu` (TensorFlow),
`data_parallel` (JAX), `torch` (PyTorch, under `torchrun`); `docs/distribution.md`
gives the command for GPUs, TPUs and several hosts, and `recipes/swav_colab.ipynb` runs
this recipe from Colab.

Expected result and time (the `fashion_mnist` defaults, 10 epochs, 2 CPU cores with AVX-512,
TensorFlow, 2026-11-28): kNN k=20 85.99% weighted / 85.86% majority, linear probe 88.27%, after
28.9 min of pretraining (a 2-core AVX2 AMD EPYC steps at least 4 times slower). The
same on JAX (2026-12-01, 2-core AVX-512 AMD EPYC, im2col convolutions): 86.32% / 86.19%,
linear 88.76%, after 140.7 min;
details in `benchmarks/RESULTS.md` (the main job, `scripts/main.sh`, runs this recipe then
`knn_eval` and `linear_eval`).

The workdir receives:
- `encoder.keras`: the encoder alone, taking raw pixels (0..255; its normalisation is a layer
  inside it), loadable under any backend with `keras.models.load_model`; rewritten after
  every epoch, and at the end with PreciseBN statistics when `--precise_bn_examples=N`;
- `backup/`: the training state (weights, optimizer, step counter, queue, every replica's
  share of it) at the last epoch end or every `--backup_every_steps` steps (100); rerunning
  the same command resumes from it, losing at most those steps, and finishes an interrupted
  epoch with its remaining steps;
- `training_log.csv` and `logs/` (TensorBoard: `tensorboard --logdir <workdir>/logs`), with
  `knn_majority` / `knn_weighted` after every epoch when `--knn_monitor_examples=N` (the kNN
  top-1 of the encoder on the first N training and test images; about a minute for 10000 on 2
  CPU cores); its `resumed_at_step` is k for an epoch resumed after its step k (that row
  averages the steps after k only), 0 for an epoch run whole;
- `multicrops.png`, `training_curves.png`, `prototype_neighbours.png`;
- `config.json`: the configuration the run uses, with `train_examples`, `seed`,
  `distribution` and the backend; `processes.json`: how many processes made it (each keeps its
  own backup, so a resume needs as many; replicas within a process may change).

Every flag is checked before anything is written: a refused run leaves a new workdir absent.
A rerun resumes only the run its workdir holds: one whose configuration or flags differ from
`config.json` is refused, naming each difference, but for the evaluation fields (`knn_k`,
`knn_temperature`, `linear_epochs`, `precise_bn_examples`) and the fields named in
`--allow_changed`: `--allow_changed=epochs --epochs=20` trains a finished 10-epoch run on to
20 epochs, its warm-up + cosine schedule built anew over 20 (the rate jumps back up from its
final value to the 20-epoch cosine's at step 10 epochs, then decays to the end). A rerun of a
finished run says "Nothing to train" and writes `encoder.keras` and the figures again.
"""

import dataclasses
import os
import time

from absl import app, flags

from recipes import configs
from recipes.builders import (
    build_encoder,
    build_model,
    build_multicrop,
    build_optimizer,
)
from recipes.features import knn_monitor
from recipes.inputs import TrainingInput, plain_batches, tensorflow_available
from recipes.pictures import plot_clusters
from recipes.training_log import TrainingLog, logged_metrics
from recipes.workdir import (
    CHANGEABLE_FIELDS,
    check_allow_changed,
    check_process_count,
    check_workdir,
    check_workdir_path,
    run_lock,
    write_record,
)

FLAGS = flags.FLAGS


def define_flags():
    """Defines the recipe's flags (called by the programs, not at import)."""
    flags.DEFINE_string("config", "fashion_mnist", f"One of {sorted(configs.CONFIGS)}.")
    flags.DEFINE_string("workdir", "runs/pretrain", "Where checkpoints, logs and encoder go.")
    flags.DEFINE_string("data_dir", None, "Folder of the data (idx files, or tfds's data_dir).")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training images.")
    flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and crops.")
    flags.DEFINE_bool(
        "deterministic", False,
        "Reproducible kernels: the same command gives the same weights (slower on TensorFlow).")
    flags.DEFINE_bool(
        "resume", True,
        "Continue from `<workdir>/backup` when it exists; --noresume refuses an existing run "
        "rather than overwriting it.",
    )
    flags.DEFINE_list(
        "allow_changed", [],
        f"Fields of config.json a resume may change, among {list(CHANGEABLE_FIELDS)} "
        "(docs/recipes.md, 'The workdir').",
    )
    flags.DEFINE_integer(
        "backup_every_steps", 100,
        "Also back up every N steps within an epoch (0: at epoch ends only).",
    )
    flags.DEFINE_string(
        "distribution", "auto",
        "How to spread training: `auto`, `none`, or the backend's own (tensorflow `mirrored`, "
        "`multi_worker`, `tpu`; jax `data_parallel`; torch `torch`; docs/distribution.md).",
    )
    # A string, checked by `pretrain` against swav_keras.layers.CONV_IMPLEMENTATIONS: importing
    # Keras here, before absl parses the flags, made the 2-worker multi_worker recipe hang in
    # training (tests/distributed_test.py, 2026-12-01), so the flags import nothing of it.
    flags.DEFINE_string(
        "conv_implementation", "auto",
        "Stride-1 convolutions while training: `native`, `im2col` (`Im2colConv2D`) or `auto` "
        "(im2col for JAX on CPU).",
    )
    flags.DEFINE_bool(
        "strict_images", False,
        "Make the first bad file of an image folder an error naming it, instead of a warning "
        "and a skip.",
    )
    flags.DEFINE_string(
        "tpu", "",
        "TensorFlow TPU name or grpc:// address for --distribution=tpu; empty finds a Colab "
        "or Cloud TPU VM's own.",
    )
    define_config_flags()


def define_config_flags():
    """One flag per configuration field, defaulting to the named configuration's value."""
    for field in dataclasses.fields(configs.PretrainConfig):
        # What the field does, in a line; what changing it measured is in docs/TUNING.md.
        advice = configs.FIELD_ADVICE.get(field.name)
        help_text = advice or f"Overrides the configuration's `{field.name}`."
        notes = ["overrides the configuration"] if advice else []
        is_list = field.type in (tuple, int | tuple)
        if is_list:
            notes.append("comma-separated")
        if field.name in configs.TUNED_FIELDS:
            notes.append("docs/TUNING.md")
        if notes:
            help_text = f"{help_text[:-1]} ({'; '.join(notes)})."
        if field.type is bool:
            flags.DEFINE_bool(field.name, None, help_text)
        elif field.type is int:
            flags.DEFINE_integer(field.name, None, help_text)
        elif field.type is float:
            flags.DEFINE_float(field.name, None, help_text)
        elif is_list:
            flags.DEFINE_list(field.name, None, help_text)
        else:
            flags.DEFINE_string(field.name, None, help_text)


def field_value(field, value, defaults):
    """A flag's parsed `value` as configuration `field` holds it (`defaults`: a config)."""
    if field.type is tuple:  # the entries take the type of the default's
        kind = type(getattr(defaults, field.name)[0])
        return tuple(kind(v) for v in value)
    if field.type == int | tuple:  # one int, or several (e.g. one per prototype head)
        value = tuple(int(v) for v in value)
        return value[0] if len(value) == 1 else value
    return value


def config_from_flags():
    overrides = {}
    defaults = configs.CONFIGS.get(FLAGS.config, configs.FASHION_MNIST)
    for field in dataclasses.fields(configs.PretrainConfig):
        value = FLAGS[field.name].value
        if value is None:
            continue
        overrides[field.name] = field_value(field, value, defaults)
    return configs.get_config(FLAGS.config, **overrides)


def pretrain(config, workdir, data_dir=None, train_examples=None, seed=0, resume=True,
             verbose="auto", distribution="none", tpu="", backup_every_steps=100,
             extra_callbacks=(), conv_implementation="auto", allow_changed=(),
             strict_images=False, deterministic=False):
    """Runs SwAV pretraining; returns a dict with the encoder path, history and wall time.

    Every argument is checked before anything is written (a refused run leaves a new workdir
    absent); a workdir holding a run is resumed only with the configuration and the
    `train_examples`, `seed`, `distribution` and backend its `config.json` records, but for
    the fields named in `allow_changed` (`recipes.workdir.check_workdir`).
    `distribution`, `tpu`, `backup_every_steps`, `conv_implementation`, `allow_changed` and
    `strict_images` are the flags of the same names (the result's `bad_images` names the
    files skipped); `deterministic` calls `swav_keras.enable_determinism()` first; process 0
    writes the files, other processes keep only their own backup under
    `<workdir>/processes/<index>/`. `extra_callbacks` are added to `fit`'s. The history holds
    the epochs this call ran (an interrupted epoch that it finished counts as one). Each
    process holds its folder's `run.lock` while it runs (`recipes.workdir.run_lock`): a second
    run of a busy workdir raises `RuntimeError` before writing anything.
    """
    import keras

    from swav_keras import backends, enable_determinism
    from swav_keras.data import image_checks
    from swav_keras.layers import CONV_IMPLEMENTATIONS
    from swav_keras.validation import check_bool, check_int

    if conv_implementation not in CONV_IMPLEMENTATIONS:
        raise ValueError(
            f"`conv_implementation` must be one of {CONV_IMPLEMENTATIONS}; received "
            f"conv_implementation={conv_implementation!r}."
        )
    if not isinstance(config, configs.PretrainConfig):  # which checked its fields when made
        raise TypeError(
            "`config` must be a `recipes.configs.PretrainConfig`; received "
            f"config={config!r} of type {type(config).__name__}."
        )
    if train_examples is not None:
        check_int("train_examples", train_examples, minimum=1)
        if train_examples < config.batch_size:
            raise ValueError(
                f"`train_examples` must be at least `batch_size`; received "
                f"train_examples={train_examples}, batch_size={config.batch_size}."
            )
    check_int("seed", seed, minimum=0)
    check_int("backup_every_steps", backup_every_steps, minimum=0)
    image_checks.check_strict_images(strict_images)
    check_bool("deterministic", deterministic)
    check_workdir_path(workdir)
    allow_changed = check_allow_changed(allow_changed)
    run = {"train_examples": train_examples, "seed": seed, "distribution": distribution,
           "backend": keras.backend.backend()}
    start = time.time()
    if deterministic:  # before the backend starts: thread pools and XLA flags are read then
        enable_determinism()
    spread = backends.active().start_distribution(distribution, tpu)
    # Each process owns a folder: the workdir (process 0) or its own under processes/.
    own_folder = workdir
    if spread.process_index:
        own_folder = os.path.join(workdir, "processes", str(spread.process_index))
    new_folder = not os.path.exists(own_folder)
    try:
        with run_lock(own_folder):
            return _pretrain(config, workdir, own_folder, spread, start, data_dir,
                             train_examples, seed, resume, verbose, backup_every_steps,
                             extra_callbacks, conv_implementation, run, allow_changed,
                             strict_images)
    except BaseException:
        # A run refused after taking the lock of a folder it made leaves no folder behind.
        lock = os.path.join(own_folder, "run.lock")
        if new_folder and os.path.isdir(own_folder) and os.listdir(own_folder) == ["run.lock"]:
            os.remove(lock)
            os.rmdir(own_folder)
        raise


def _pretrain(config, workdir, own_folder, spread, start, data_dir, train_examples, seed,
              resume, verbose, backup_every_steps, extra_callbacks, conv_implementation, run,
              allow_changed, strict_images):
    """`pretrain` once `own_folder` is locked for this process: everything is checked and
    built before the first file is written."""
    import keras

    from swav_keras import callbacks
    from swav_keras.data import image_checks
    from swav_keras.visualization import plot_multicrops

    chief = spread.process_index == 0
    check_process_count(workdir, spread.process_count, write=False)
    if chief:  # before anything is read or built: a changed run is refused at once
        record = check_workdir(workdir, config, resume, run, allow_changed)
    backup_dir = os.path.join(own_folder, "backup")
    backup = callbacks.MidEpochBackupAndRestore(backup_dir, save_every_steps=backup_every_steps)
    epoch, steps_done = backup.position()
    started = epoch + (1 if steps_done else 0)  # epochs begun, the interrupted one included
    if started > config.epochs:  # with --allow_changed=epochs
        raise ValueError(
            f"`epochs` must be at least the {started} epochs that "
            f"{workdir} has started; received epochs={config.epochs}."
        )
    keras.utils.set_random_seed(seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    source = TrainingInput.load(config, spread, data_dir, train_examples, seed, strict_images)
    # Processes draw different crops of their shares; the replicas of one tf.distribute
    # process share the layer's generator and move its seeds by their replica index.
    layer_seed = seed + spread.process_index
    if source.as_arrays:
        first_images = source.images[:source.batch_size]
        first_batch = build_multicrop(config, layer=True, seed=layer_seed)(first_images)
    elif config.augment_in_model:
        (first_images,) = next(iter(source.batches(0).take(1)))
        first_batch = build_multicrop(config, layer=True, seed=layer_seed)(first_images)
    else:
        (first_batch,) = next(iter(source.batches(0).take(1)))
    model = _build_model(config, spread, source.info, source.steps_per_epoch, layer_seed,
                         conv_implementation, chief and verbose,
                         first_images if config.augment_in_model else first_batch)
    if chief:  # the first files written
        write_record(workdir, record)
        check_process_count(workdir, spread.process_count, write=True)
        plot_multicrops([keras.ops.convert_to_numpy(c) for c in first_batch],
                        os.path.join(workdir, "multicrops.png"), num_images=6)

    encoder_path = os.path.join(workdir, "encoder.keras")
    fit_callbacks = _fit_callbacks(config, workdir, chief, backup, seed, data_dir,
                                   strict_images, steps_done if epoch < config.epochs else 0,
                                   verbose) + list(extra_callbacks)
    fit = dict(epochs=config.epochs, shuffle=False, verbose=verbose if chief else 0)
    history = {}
    if steps_done and epoch < config.epochs and chief and verbose:
        print(f"Resuming epoch {epoch + 1}/{config.epochs} after its step "
              f"{steps_done}/{source.steps_per_epoch}.")
    # One `fit` per epoch, each on its own epoch's input (`batches`); an interrupted epoch
    # runs only its remaining batches.
    for e in range(epoch, config.epochs):
        run = model.fit(source.batches(e, steps_done if e == epoch else 0), initial_epoch=e,
                        **fit, callbacks=fit_callbacks + [callbacks.StopAfterEpoch()])
        for name, values in run.history.items():
            history[name] = history.get(name, []) + values
    if epoch >= config.epochs:
        # Nothing left to train (a finished run started again): without `fit` no callback
        # restores the trained weights, and the files below would hold a fresh model's
        # (without a backup, `restore` leaves the model as it is).
        backup.restore(model)
        if chief and verbose:
            print(f"Nothing to train: {workdir} finished all {config.epochs} epochs; "
                  "encoder.keras and the figures are written again from its backup (to train "
                  "on, raise --epochs with --allow_changed=epochs).")
    if chief:
        _write_results(config, workdir, model, source, verbose)
    bad_images = image_checks.bad_images(os.path.expanduser(config.dataset))
    if chief and bad_images:
        print(f"Bad images: {len(bad_images)} files skipped (named in the warnings above).")
    return {
        "bad_images": bad_images,
        "encoder_path": encoder_path,
        "model": model,
        "history": history,
        "epochs": config.epochs,
        "steps_per_epoch": source.steps_per_epoch,
        "seconds": time.time() - start,
        "info": source.info,
        "distribution": spread,
    }


def _build_model(config, spread, info, steps_per_epoch, layer_seed, conv_implementation,
                 verbose, first_input):
    """The compiled SwAV model of `config`, built in `spread`'s scope on `first_input` (its
    variables made there; `BackupAndRestore` needs them)."""
    import keras

    from swav_keras.layers import (
        NativeBatchNormalization,
        NativeConv2D,
        with_conv_implementation,
        with_layer_implementation,
    )

    with spread.scope():
        encoder, chosen = with_conv_implementation(build_encoder(config, info),
                                                   conv_implementation)
        # PyTorch's own convolution and BatchNorm kernels under torch: the same function, faster
        # (benchmarks/step_vs_pytorch.py); encoder.keras is saved with Keras's layers.
        encoder, _ = with_layer_implementation(encoder, "auto")
        augmentation = None
        if config.augment_in_model:
            augmentation = build_multicrop(config, layer=True, seed=layer_seed)
        model = build_model(config, encoder, steps_per_epoch, spread, augmentation)
        if verbose:  # what the model holds: synchronised BatchNorm takes Keras's ops
            native = sum(isinstance(layer, NativeConv2D) or (
                isinstance(layer, NativeBatchNormalization)
                and not layer.synchronized_across_replicas) for layer in model.encoder.layers)
            print(f"Encoder convolutions: {chosen} "
                  f"(--conv_implementation={conv_implementation}, {keras.backend.backend()})"
                  + (f"; {native} layers as PyTorch's own kernels." if native else "."))
        model.compile(optimizer=build_optimizer(config, steps_per_epoch))
        model(first_input, training=False)
    return model


def _fit_callbacks(config, workdir, chief, backup, seed, data_dir, strict_images,
                   resumed_at_step, verbose):
    """`fit`'s callbacks: the monitor first (an epoch-end backup holds what it changed), the
    backup; on the chief, the kNN monitor before the loggers that record its figures."""
    import keras

    from swav_keras import callbacks

    fit_callbacks = [
        callbacks.AssignmentMonitor(
            reinitialize_unused=config.reinitialize_unused_prototypes, seed=seed, verbose=0
        ),
        backup,
    ]
    if not chief:
        return fit_callbacks
    if config.knn_monitor_examples:
        fit_callbacks.append(knn_monitor(config, data_dir, strict_images))
    fit_callbacks += [
        callbacks.EncoderCheckpoint(os.path.join(workdir, "encoder.keras")),
        TrainingLog(os.path.join(workdir, "training_log.csv"), resumed_at_step),
    ]
    if tensorflow_available():  # TensorBoard writes through tf.summary
        fit_callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(workdir, "logs"), write_graph=False))
    elif verbose:
        print("No TensorBoard logs: TensorFlow is not installed (training_log.csv holds "
              "the same figures).")
    return fit_callbacks


def _write_results(config, workdir, model, source, verbose):
    """The chief's files after training: encoder.keras (with PreciseBN statistics when
    asked), the training curves and the prototypes' neighbours."""
    from swav_keras import backends, callbacks
    from swav_keras.visualization import plot_training_curves

    csv_path = os.path.join(workdir, "training_log.csv")
    # On multi-host JAX, on copies that this process holds (the others have finished).
    local = backends.active().process_local(
        model.encoder, model.projection_head, model.prototypes)
    with local as (encoder, projection_head, prototypes):
        final = encoder
        if config.precise_bn_examples:
            final = _with_precise_batch_norm(encoder, plain_batches(source.images),
                                             config.precise_bn_examples, verbose)
        callbacks.save_encoder(final, os.path.join(workdir, "encoder.keras"))
        if os.path.exists(csv_path) and os.path.getsize(csv_path) > 0:
            plot_training_curves(csv_path, os.path.join(workdir, "training_curves.png"),
                                 metrics=logged_metrics(csv_path))
        images = (source.images, source.labels) if source.as_arrays else source.images
        plot_clusters(encoder, projection_head, prototypes, images,
                      os.path.join(workdir, "prototype_neighbours.png"), source.info)


def _with_precise_batch_norm(encoder, images, examples, verbose="auto"):
    """A copy of `encoder` with its BatchNorm statistics recomputed on the first `examples`
    of `images` (an array, or batches), uncropped; the training model keeps its own."""
    import keras

    from swav_keras.evaluation import precise_batch_norm

    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    used = precise_batch_norm(copy, images, num_examples=examples)
    if verbose:
        print(f"PreciseBN: BatchNorm statistics recomputed on {used} plain training images.")
    return copy


def main(argv):
    del argv
    config = config_from_flags()
    result = pretrain(
        config, FLAGS.workdir, FLAGS.data_dir, FLAGS.train_examples, FLAGS.seed, FLAGS.resume,
        distribution=FLAGS.distribution, tpu=FLAGS.tpu,
        backup_every_steps=FLAGS.backup_every_steps,
        conv_implementation=FLAGS.conv_implementation, allow_changed=FLAGS.allow_changed,
        strict_images=FLAGS.strict_images, deterministic=FLAGS.deterministic,
    )
    minutes = result["seconds"] / 60
    print(f"Encoder: {result['encoder_path']} ({config.epochs} epochs, {minutes:.1f} min)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
