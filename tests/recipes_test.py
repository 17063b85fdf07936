"""End-to-end recipe runs on a small real subset of Fashion-MNIST: pretrain, kNN, resume."""

import csv
import dataclasses
import json
import os
import re

import keras
import numpy as np
import pytest
from backend_runs import ONCE, UNDER_JAX_AND_TORCH
from no_tensorflow import run_without_tensorflow
from step_interrupt import StepInterrupt

from recipes import configs
from recipes.features import load_encoder, load_split
from recipes.knn_eval import knn_eval
from recipes.linear_eval import linear_eval
from recipes.main import format_table
from recipes.pretrain import pretrain
from recipes.workdir import check_process_count, prepare_workdir, run_lock
from swav_keras.layers import Im2colConv2D, NativeBatchNormalization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = dict(
    width=4, projection_dim=16, hidden_dim=32, num_prototypes=20, batch_size=64,
    num_crops=(2, 2), crop_sizes=(28, 14), freeze_prototypes_steps=2, queue_length=1024,
    queue_start_epoch=0, epochs=1, warmup_epochs=0.0, base_learning_rate=1.0,
    final_learning_rate=0.001,
)


def _config(**changes):
    return configs.get_config("fashion_mnist", **{**TINY, **changes})


def _epochs_in_csv(workdir):
    with open(os.path.join(workdir, "training_log.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_pretrain_then_knn_on_real_images(tmp_path):
    workdir = str(tmp_path / "run")
    result = pretrain(_config(), workdir, train_examples=512, seed=1, verbose=0)
    for name in ("encoder.keras", "config.json", "training_log.csv", "multicrops.png",
                 "training_curves.png", "prototype_neighbours.png"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert np.isfinite(result["history"]["loss"]).all()
    encoder = keras.models.load_model(result["encoder_path"])
    raw = np.full((2, 28, 28, 1), 128.0, "float32")  # raw pixels in: normalisation inside
    assert encoder(raw).shape == (2, 32)
    scores = knn_eval(result["encoder_path"], train_examples=2000, k=20, verbose=0)
    # Eight steps of a width-4 net only check that the features carry class information:
    # chance is 0.1. Measured 0.376 (TF, 2-core AMD EPYC, 2026-11-29), and 0.396 with a
    # strided shortcut conv, whose float summation order differs. Quality is benchmarked.
    assert scores["weighted"] > 0.25


def test_rerunning_resumes_with_optimizer_and_queue_state(tmp_path):
    workdir = str(tmp_path / "run")
    first = pretrain(_config(epochs=1), workdir, train_examples=512, verbose=0)
    steps = first["steps_per_epoch"]
    assert steps == 8
    model = first["model"]
    assert int(keras.ops.convert_to_numpy(model.queue.filled)) == steps * 64 == 512
    files = _listing(workdir)
    # Another run in the same workdir is refused before anything is touched, each change named.
    with pytest.raises(ValueError) as info:
        pretrain(_config(epochs=2), workdir, train_examples=1000, seed=3, verbose=0)
    assert str(info.value) == (
        f"{workdir} holds a run made with other settings: epochs=1 there, 2 now; "
        "train_examples=512 there, 1000 now; seed=0 there, 3 now. Resuming it with them would "
        "mix two runs: rerun with the run's values, or use another --workdir."
    )
    with pytest.raises(ValueError) as info:
        pretrain(_config(epochs=2), workdir, train_examples=512, verbose=0)
    assert str(info.value).endswith(
        "epochs=1 there, 2 now. Resuming it with them would mix two runs: rerun with the run's "
        "values, or use another --workdir; or allow the change with --allow_changed=epochs."
    )
    assert _listing(workdir) == files
    # Allowed, more epochs continue from epoch 2, the schedule stretched over both.
    second = pretrain(_config(epochs=2), workdir, train_examples=512, verbose=0,
                      allow_changed=["epochs"])
    model = second["model"]
    assert len(second["history"]["loss"]) == 1  # only the second epoch ran
    assert _epochs_in_csv(workdir) == [0, 1]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * steps
    assert int(keras.ops.convert_to_numpy(model.step)) == 2 * steps
    # The queue kept its first epoch: without the restore it would hold 512 embeddings.
    assert int(keras.ops.convert_to_numpy(model.queue.filled)) == 1024
    # Step 8, the first of epoch 2, is halfway down the 16-step cosine from 1.0 to 0.001.
    rate = float(keras.ops.convert_to_numpy(model.optimizer.inner_optimizer._learning_rate(8)))
    np.testing.assert_allclose(rate, 0.001 + (1.0 - 0.001) * 0.5, rtol=1e-5)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["epochs"] == 2  # what the next resume checks against
    with pytest.raises(ValueError) as info:  # fewer epochs than the run has trained
        pretrain(_config(epochs=1), workdir, train_examples=512, verbose=0,
                 allow_changed=["epochs"])
    assert str(info.value) == (
        f"`epochs` must be at least the 2 epochs that {workdir} has started; received epochs=1."
    )


def _listing(folder):
    """Every file under `folder` with its size and modification time, but the lock (taken and
    emptied by every run)."""
    return sorted((os.path.join(root, name), os.path.getsize(os.path.join(root, name)),
                   os.path.getmtime(os.path.join(root, name)))
                  for root, _, names in os.walk(folder) for name in names if name != "run.lock")


def _moving_mean(encoder, name):
    return keras.ops.convert_to_numpy(encoder.get_layer(name).moving_mean)


@ONCE
def test_precise_bn_examples_writes_statistics_of_plain_training_images(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    # 128 training images: PreciseBN is asked for 200 and gets the 128 there are.
    result = pretrain(_config(precise_bn_examples=200), workdir, train_examples=128, verbose=0)
    trained = result["model"].encoder
    saved = keras.models.load_model(result["encoder_path"])
    # The first BatchNorm's input does not depend on any other: its PreciseBN mean is the
    # mean of the stem conv over the 128 uncropped images.
    images, _, _ = load_split("fashion_mnist", "train", take=128)
    stem = keras.Model(saved.inputs, saved.get_layer("conv1_conv").output)
    expected = keras.ops.convert_to_numpy(stem(images.astype("float32"))).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(_moving_mean(saved, "conv1_bn"), expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(_moving_mean(trained, "conv1_bn"), expected, atol=1e-3)
    # The training model keeps its own statistics; the field may change on resume: rerunning
    # the finished run without PreciseBN writes them back, and says it trained nothing.
    capsys.readouterr()
    pretrain(_config(precise_bn_examples=0), workdir, train_examples=128, verbose=1)
    assert (f"Nothing to train: {workdir} finished all 1 epochs; encoder.keras and the figures "
            "are written again from its backup (to train on, raise --epochs with "
            "--allow_changed=epochs).") in capsys.readouterr().out.splitlines()
    again = keras.models.load_model(result["encoder_path"])
    for layer in trained.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_allclose(_moving_mean(again, layer.name),
                                       _moving_mean(trained, layer.name), rtol=1e-6)
    with pytest.raises(ValueError, match=r"`precise_bn_examples` must be an integer >= 0; "
                                         r"received precise_bn_examples=-1"):
        pretrain(_config(precise_bn_examples=-1), str(tmp_path / "other"), verbose=0)
    assert not os.path.exists(tmp_path / "other")


@ONCE
def test_rerunning_an_interrupted_epoch_runs_only_its_remaining_steps(tmp_path):
    workdir = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):  # stopped at step 5 of epoch 2 (backups every 3)
        pretrain(_config(epochs=2), workdir, train_examples=512, verbose=0,
                 backup_every_steps=3, extra_callbacks=[StepInterrupt(8 + 5)])
    assert _epochs_in_csv(workdir) == [0]
    counter = StepInterrupt()  # counts the steps only
    result = pretrain(_config(epochs=2), workdir, train_examples=512, verbose=0,
                      backup_every_steps=3, extra_callbacks=[counter])
    model = result["model"]
    assert counter.seen == 5
    assert len(result["history"]["loss"]) == 1  # the rest of epoch 2
    assert _epochs_in_csv(workdir) == [0, 1]
    # Steps 4..8 of epoch 2 ran once more after its backup at step 3: 16 steps in all.
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 16
    assert int(keras.ops.convert_to_numpy(model.step)) == 16
    assert int(keras.ops.convert_to_numpy(model.queue.filled)) == 16 * 64


# NumPy + ImageBatches on every backend; tf.data batches feed every backend alike: once.
@pytest.mark.parametrize("image_size", [0, pytest.param(28, marks=ONCE)])
def test_augment_in_model_trains_and_resumes_the_crop_stream(tmp_path, image_size):
    workdir = str(tmp_path / "run")
    config = dict(augment_in_model=True, image_size=image_size)
    first = pretrain(_config(epochs=1, **config), workdir, train_examples=512, verbose=0)
    assert np.isfinite(first["history"]["loss"]).all()
    assert os.path.isfile(os.path.join(workdir, "multicrops.png"))
    generator = first["model"].augmentation.seed_generator
    state = keras.ops.convert_to_numpy(generator.state).copy()
    second = pretrain(_config(epochs=2, **config), workdir, train_examples=512, verbose=0,
                      allow_changed=["epochs"])
    resumed = keras.ops.convert_to_numpy(second["model"].augmentation.seed_generator.state)
    # The run drew 9 equal calls' worth (building call + 8 steps) from the seed's start; the
    # backup restored that state, and epoch 2 went on with 8 new steps instead of repeating.
    start = keras.ops.convert_to_numpy(keras.random.SeedGenerator(0).state)
    per_call = (state - start) // 9
    assert per_call[1] > 0
    np.testing.assert_array_equal(resumed, state + 8 * per_call)
    assert int(keras.ops.convert_to_numpy(second["model"].step)) == 16
    with pytest.raises(ValueError, match=r"augment_in_model=True there, False now\."):
        pretrain(_config(epochs=2, image_size=image_size), workdir, train_examples=512,
                 verbose=0)


def test_augment_in_model_finishes_an_interrupted_epoch(tmp_path):
    workdir = str(tmp_path / "run")
    config = _config(epochs=2, augment_in_model=True)
    with pytest.raises(KeyboardInterrupt):  # stopped at step 5 of epoch 2 (backups every 3)
        pretrain(config, workdir, train_examples=512, verbose=0, backup_every_steps=3,
                 extra_callbacks=[StepInterrupt(8 + 5)])
    counter = StepInterrupt()
    result = pretrain(config, workdir, train_examples=512, verbose=0, backup_every_steps=3,
                      extra_callbacks=[counter])
    assert counter.seen == 5 and _epochs_in_csv(workdir) == [0, 1]
    # Steps 4..8 of epoch 2 ran once more after its backup at step 3: 16 steps in all.
    model = result["model"]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 16
    assert int(keras.ops.convert_to_numpy(model.step)) == 16
    assert int(keras.ops.convert_to_numpy(model.queue.filled)) == 16 * 64
    with open(os.path.join(workdir, "training_log.csv")) as f:  # epoch 2's row: steps 4-8
        assert [row["resumed_at_step"] for row in csv.DictReader(f)] == ["0", "3"]


@UNDER_JAX_AND_TORCH
def test_fashion_mnist_with_crops_in_the_model_needs_no_tensorflow(tmp_path):
    # As on a GPU image with JAX or PyTorch but no TensorFlow: pretrain, then kNN.
    out = run_without_tensorflow(f"""
        from recipes_test import _config
        from recipes.knn_eval import knn_eval
        from recipes.pretrain import pretrain
        result = pretrain(_config(augment_in_model=True), {str(tmp_path / "run")!r},
                          train_examples=512, seed=1, verbose=1)
        scores = knn_eval(result["encoder_path"], train_examples=2000, k=20, verbose=0)
        print("tensorflow imported:", "tensorflow" in sys.modules)
        print("kNN weighted", scores["weighted"])
    """, keras.backend.backend())
    assert "No TensorBoard logs: TensorFlow is not installed" in out
    assert "tensorflow imported: False" in out
    assert float(out.split("kNN weighted")[-1]) > 0.25  # as the TensorFlow run above
    for name in ("encoder.keras", "multicrops.png", "prototype_neighbours.png"):
        assert os.path.isfile(os.path.join(tmp_path, "run", name)), name


def _fashion_folder(root, train=256, test=100):
    """The first Fashion-MNIST images as PNG files in `train/` and `test/` class folders."""
    from PIL import Image

    for split, count in (("train", train), ("test", test)):
        images, labels, _ = load_split("fashion_mnist", split, None, take=count)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0]).save(folder / f"{i:04d}.png")


@UNDER_JAX_AND_TORCH
def test_image_folder_with_crops_in_the_model_needs_no_tensorflow(tmp_path):
    # The folder streams from disk (ImageFiles, Pillow) where TensorFlow is missing.
    _fashion_folder(tmp_path / "images", train=300)
    out = run_without_tensorflow(f"""
        import numpy as np
        from recipes_test import _config, _moving_mean
        from recipes.knn_eval import knn_eval
        from recipes.pretrain import pretrain
        from swav_keras.data import load_arrays
        config = _config(augment_in_model=True, dataset={str(tmp_path / "images")!r},
                         precise_bn_examples=1000)
        result = pretrain(config, {str(tmp_path / "run")!r}, seed=1, verbose=0)
        scores = knn_eval(result["encoder_path"], dataset=config.dataset, k=5, verbose=0)
        print("tensorflow imported:", "tensorflow" in sys.modules)
        # PreciseBN read all 300 streamed images (a batch of 256, then the other 44).
        saved = keras.models.load_model(result["encoder_path"])
        stem = keras.Model(saved.inputs, saved.get_layer("conv1_conv").output)
        images = load_arrays(config.dataset)[0].astype("float32")
        expected = keras.ops.convert_to_numpy(stem(images)).mean(axis=(0, 1, 2))
        print("PreciseBN on every image:", np.allclose(
            _moving_mean(saved, "conv1_bn"), expected, rtol=1e-4, atol=1e-4))
        pixels = knn_eval("pixels", dataset=config.dataset, k=5, verbose=0)
        print("pixels kNN weighted", pixels["weighted"])
        print("kNN weighted", scores["weighted"])
    """, keras.backend.backend())
    assert "tensorflow imported: False" in out
    assert "PreciseBN on every image: True" in out
    # Labels follow their images: raw pixels score far above chance (0.1) over 100 test
    # images. The encoder, trained a few steps, scored 0.20-0.26 (last-bit differences
    # between runs move it): held above chance only.
    assert float(re.search(r"^pixels kNN weighted (\S+)$", out, re.M).group(1)) > 0.5
    assert float(re.search(r"^kNN weighted (\S+)$", out, re.M).group(1)) > 0.15
    assert os.path.isfile(os.path.join(tmp_path, "run", "encoder.keras"))


@ONCE
def test_noresume_never_overwrites_a_run(tmp_path):
    workdir = str(tmp_path / "run")
    pretrain(_config(), workdir, train_examples=128, verbose=0)
    before = os.path.getmtime(os.path.join(workdir, "encoder.keras"))
    with pytest.raises(ValueError) as info:
        pretrain(_config(), workdir, train_examples=128, resume=False, verbose=0)
    assert "already holds a run" in str(info.value)
    with pytest.raises(ValueError) as info:
        pretrain(_config(num_prototypes=30), workdir, train_examples=128, verbose=0)
    assert str(info.value) == (
        f"{workdir} holds a run made with other settings: num_prototypes=20 there, 30 now. "
        "Resuming it with them would mix two runs: rerun with the run's values, or use another "
        "--workdir."
    )
    assert os.path.getmtime(os.path.join(workdir, "encoder.keras")) == before


def test_resuming_with_another_process_count_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(os.path.join(workdir, "backup"))
    check_process_count(workdir, 2, write=True)
    check_process_count(workdir, 2, write=False)
    with pytest.raises(ValueError) as info:
        check_process_count(workdir, 3, write=False)
    assert str(info.value) == (
        f"{workdir} holds a run of 2 process(es), each with its own backup; received 3 "
        "processes. Resume it with 2, or use another --workdir."
    )
    os.rmdir(os.path.join(workdir, "backup"))  # no run yet: any count starts afresh
    check_process_count(workdir, 3, write=True)


def test_unknown_config_and_fields():
    with pytest.raises(ValueError) as info:
        configs.get_config("mnist")
    assert str(info.value).startswith("`config` must be one of ['cifar10', 'fashion_mnist'")
    with pytest.raises(ValueError) as info:
        configs.get_config("fashion_mnist", learning_rate=1.0)
    assert str(info.value).startswith("Unknown configuration fields ['learning_rate']")


@pytest.mark.parametrize("changes, message", [
    ({"stages": 5}, "`stages` must be an integer in 1-4; received stages=5."),
    ({"backbone": "resnet50", "stages": 3},
     "`stages` applies to the small ResNet only; received stages=3 with backbone='resnet50'."),
    ({"pooling": "max"},
     "`pooling` must be one of ('avg', 'corners', 'grid'); received pooling='max'."),
    ({"backbone": "resnet50", "pooling": "corners"},
     "`pooling` applies to the small ResNet only; received pooling='corners' with "
     "backbone='resnet50'."),
    ({"grid_size": 3},
     "`grid_size` applies to pooling='grid' only; received grid_size=3 with pooling='avg'."),
    ({"backbone": "resnet50", "pooling": "grid"},
     "`pooling` applies to the small ResNet only; received pooling='grid' with "
     "backbone='resnet50'."),
    ({"pooling": "grid", "grid_size": 3},
     "grid_size=3 needs a last feature map of 3x3 or more, but the smallest crop "
     "(crop_sizes=(28, 14)) gives 2x2 with stages=4: use a smaller `grid_size`, fewer `stages` "
     "or larger `crop_sizes`."),
    ({"pooling": "corners", "crop_sizes": (28, 4)},
     "pooling='corners' needs a last feature map of 2x2 or more, but the smallest crop "
     "(crop_sizes=(28, 4)) gives 1x1 with stages=4: use fewer `stages` or larger "
     "`crop_sizes`."),
])
def test_bad_stages_and_pooling_are_refused_before_anything_is_written(tmp_path, changes, message):
    workdir = str(tmp_path / "run")
    with pytest.raises(ValueError) as info:
        pretrain(_config(**changes), workdir, verbose=0)
    assert str(info.value) == message
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("changes, arguments, message", [
    ({"batch_size": 0}, {}, "`batch_size` must be a positive integer; received batch_size=0."),
    ({"epochs": -1}, {}, "`epochs` must be a positive integer; received epochs=-1."),
    ({}, {"train_examples": 0},
     "`train_examples` must be a positive integer; received train_examples=0."),
    ({"crops_for_assign": (0, 7)}, {},
     "`crops_for_assign` must hold crop indices in [0, 3] for 4 crops; received "
     "crops_for_assign=(0, 7)."),
    ({}, {"seed": -1}, "`seed` must be an integer >= 0; received seed=-1."),
    ({}, {"allow_changed": ["batch_size"]},
     "`allow_changed` must name fields among ('epochs',); received "
     "allow_changed=['batch_size']."),
])
def test_bad_flags_are_refused_by_name_before_anything_is_written(tmp_path, changes, arguments,
                                                                 message):
    workdir = str(tmp_path / "run")
    with pytest.raises(ValueError) as info:
        pretrain(_config(**changes), workdir, **{"train_examples": 128, **arguments}, verbose=0)
    assert str(info.value) == message
    assert not os.path.exists(workdir)


def test_a_config_that_is_not_a_pretrain_config_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    with pytest.raises(TypeError) as info:
        pretrain({"epochs": 1}, workdir, verbose=0)
    assert str(info.value) == (
        "`config` must be a `recipes.configs.PretrainConfig`; received config={'epochs': 1} "
        "of type dict."
    )
    assert not os.path.exists(workdir)


def test_a_workdir_that_is_a_file_is_refused_by_name(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("kept")
    with pytest.raises(ValueError) as info:
        pretrain(_config(), str(path), train_examples=128, verbose=0)
    assert str(info.value) == (
        f"`workdir` must be a folder, new or existing; received workdir={str(path)!r}, an "
        "existing file."
    )
    assert path.read_text() == "kept"


def test_a_batch_larger_than_the_data_leaves_no_workdir(tmp_path):
    # Known only once the folder is read, after the lock: the folder it made is removed.
    _fashion_folder(tmp_path / "images", train=40, test=1)
    workdir = str(tmp_path / "run")
    with pytest.raises(ValueError) as info:
        pretrain(_config(dataset=str(tmp_path / "images")), workdir, verbose=0)
    assert str(info.value) == (
        "`batch_size` must be at most the 40 training images; received batch_size=64."
    )
    assert not os.path.exists(workdir)


def test_an_unreadable_encoder_file_is_named_as_such(tmp_path):
    info = load_split("fashion_mnist", "train", take=64)[2]
    path = str(tmp_path / "encoder.keras")
    load_encoder("random:4", info).save(path)
    truncated, text = str(tmp_path / "truncated.keras"), str(tmp_path / "text.keras")
    with open(path, "rb") as source, open(truncated, "wb") as target:
        target.write(source.read(300))
    with open(text, "w") as f:
        f.write("not a model")
    for evaluate in (knn_eval, linear_eval):
        for bad in (truncated, text):
            with pytest.raises(ValueError) as error:
                evaluate(bad, train_examples=100, verbose=0)
            assert str(error.value) == (
                f"`encoder` must be a readable .keras model; received encoder={bad!r}: the "
                "file exists but cannot be read as a .keras model (not a zip archive, as "
                ".keras files are: truncated, or saved in another format)."
            )
        missing = str(tmp_path / "missing.keras")
        with pytest.raises(ValueError) as error:
            evaluate(missing, train_examples=100, verbose=0)
        assert str(error.value) == (
            f"`encoder` must be a .keras file; received encoder={missing!r}: no such file."
        )
        with pytest.raises(ValueError) as error:
            evaluate("pixels", train_examples=0, verbose=0)
        assert str(error.value) == (
            "`train_examples` must be a positive integer; received train_examples=0."
        )


def test_load_encoder_builds_the_random_baseline_or_loads_a_file(tmp_path):
    info = load_split("fashion_mnist", "train", take=64)[2]
    first, second = load_encoder("random:4", info), load_encoder("random:4", info)
    assert first.output_shape == (None, 32)
    for a, b in zip(first.get_weights(), second.get_weights()):  # seeded: the same baseline
        np.testing.assert_array_equal(a, b)
    path = str(tmp_path / "encoder.keras")
    first.save(path)
    loaded = load_encoder(path, info)
    images = np.full((2, 28, 28, 1), 200.0, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)),
                               keras.ops.convert_to_numpy(first(images)), rtol=1e-6, atol=1e-6)


def test_linear_eval_without_global_pooling_trains_on_the_last_map_pooled_2x2(tmp_path):
    info = load_split("fashion_mnist", "train", take=64)[2]
    path = str(tmp_path / "encoder.keras")
    load_encoder("random:4", info).save(path)
    pooled = linear_eval(path, train_examples=1000, epochs=2, verbose=0, global_pooling=False)
    assert 0.3 < pooled["top1"] <= pooled["top5"] <= 1.0  # 10 classes: chance is 0.1
    with pytest.raises(ValueError) as error:
        linear_eval("pixels", train_examples=100, epochs=1, verbose=0, global_pooling=False)
    assert str(error.value) == (
        "`global_pooling=False` pools an encoder's last feature map; raw pixels have none: "
        "received encoder='pixels'."
    )


def test_imagenet_configs_carry_the_original_values():
    big = configs.get_config("imagenet_resnet50_800ep")
    assert (big.batch_size, big.base_learning_rate, big.final_learning_rate) == (4096, 4.8, 0.0048)
    assert (big.warmup_epochs, big.warmup_start_learning_rate) == (10.0, 0.3)
    assert (big.num_crops, big.crop_sizes) == ((2, 6), (224, 96))
    assert (big.min_scales, big.max_scales) == ((0.14, 0.05), (1.0, 0.14))
    assert (big.num_prototypes, big.epsilon, big.sinkhorn_iterations) == (3000, 0.05, 3)
    assert big.freeze_prototypes_steps == 313 and big.sync_batchnorm and big.mixed_precision
    small = configs.get_config("imagenet_resnet50_bs256")
    assert (small.batch_size, small.base_learning_rate, small.queue_length) == (256, 0.6, 3840)
    assert (small.queue_start_epoch, small.freeze_prototypes_steps) == (15, 5005)


def test_tuning_advice_is_given_for_real_fields_only():
    fields = {field.name for field in dataclasses.fields(configs.PretrainConfig)}
    assert set(configs.FIELD_ADVICE) <= fields, set(configs.FIELD_ADVICE) - fields
    assert all(text.endswith(".") for text in configs.FIELD_ADVICE.values())
    # A flag's help says what it does in a line: one sentence, the rest in docs/TUNING.md.
    long = {k: text for k, text in configs.FIELD_ADVICE.items()
            if ". " in text or len(text) > 130}
    assert not long, long
    # Measured figures live in docs/TUNING.md, one section per tuned field, not in flag help.
    assert not [k for k, text in configs.FIELD_ADVICE.items() if "%" in text]
    with open(os.path.join(ROOT, "docs", "TUNING.md")) as f:
        sections = re.findall(r"^## (\w+)$", f.read(), re.M)
    assert sections == list(configs.TUNED_FIELDS) and set(sections) <= fields


def test_a_second_run_of_a_busy_workdir_is_refused_before_writing(tmp_path):
    workdir = str(tmp_path / "run")
    with run_lock(workdir):  # as a first run would hold it
        with pytest.raises(RuntimeError, match="is in use by another run"):
            pretrain(_config(), workdir, train_examples=128, verbose=0)
        assert os.listdir(workdir) == ["run.lock"]  # nothing else written


def test_conv_implementations_share_checkpoints_and_export_plain_conv2d(tmp_path):
    workdir = str(tmp_path / "run")
    first = pretrain(_config(epochs=1), workdir, train_examples=128, verbose=0,
                     conv_implementation="im2col")
    assert any(isinstance(layer, Im2colConv2D) for layer in first["model"].encoder.layers)
    # Under torch the recipe also takes PyTorch's own BatchNorm kernels (convs: im2col here).
    native = any(isinstance(layer, NativeBatchNormalization)
                 for layer in first["model"].encoder.layers)
    assert native == (keras.backend.backend() == "torch")
    # Resumed with the native convs from the im2col run's backup: same variables.
    second = pretrain(_config(epochs=2), workdir, train_examples=128, verbose=0,
                      conv_implementation="native", allow_changed=["epochs"])
    assert len(second["history"]["loss"]) == 1
    encoder = keras.models.load_model(os.path.join(workdir, "encoder.keras"))
    convs = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(type(layer) is keras.layers.Conv2D for layer in convs)
    norms = [layer for layer in encoder.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(layer) is keras.layers.BatchNormalization for layer in norms)
    # The native layers trained what was saved: the same outputs from the live encoder.
    images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(images, training=False)),
        keras.ops.convert_to_numpy(second["model"].encoder(images, training=False)),
        rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError) as info:
        pretrain(_config(), workdir, conv_implementation="fast")
    assert str(info.value) == (
        "`conv_implementation` must be one of ('auto', 'native', 'im2col'); received "
        "conv_implementation='fast'."
    )


@ONCE
def test_knn_monitor_examples_logs_knn_top1_after_every_epoch(tmp_path):
    workdir = str(tmp_path / "run")
    result = pretrain(_config(epochs=2, knn_monitor_examples=100), workdir,
                      train_examples=128, verbose=0)
    for name in ("knn_majority", "knn_weighted"):
        values = result["history"][name]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values), (name, values)
    with open(os.path.join(workdir, "training_log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [float(row["knn_weighted"]) for row in rows] == result["history"]["knn_weighted"]


def test_a_run_from_before_a_new_config_field_resumes_at_its_default(tmp_path):
    workdir = str(tmp_path / "run")
    prepare_workdir(workdir, _config(), resume=True)
    os.makedirs(os.path.join(workdir, "backup"))
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    del saved["knn_monitor_examples"]  # as written before the field existed
    with open(path, "w") as f:
        json.dump(saved, f)
    prepare_workdir(workdir, _config(), resume=True)  # the default: the same run
    with pytest.raises(ValueError, match=r": knn_monitor_examples=0 there, 10 now\. "):
        prepare_workdir(workdir, _config(knn_monitor_examples=10), resume=True)


def test_main_table_names_the_layout_when_it_is_not_the_default():
    rows = [{"representation": "SwAV encoder", "knn_majority": 0.8612, "knn_weighted": 0.8634,
             "linear_top1": 0.885}]
    config = configs.get_config("fashion_mnist")
    table = format_table(rows, config, 60.0, 90.0, "jax").splitlines()
    assert table[0] == ("SwAV on fashion_mnist: 10 epochs, batch 128, small_resnet width 16, "
                        "K=128, backend jax")
    assert table[-3] == "| SwAV encoder | 86.12% | 86.34% | 88.50% |"
    assert table[-1] == "wall time: pretraining 1.0 min, total 1.5 min"
    deeper = format_table(rows, config.replace(stages=3, hidden_layers=2), 60.0, 90.0, "jax")
    assert deeper.splitlines()[0] == (
        "SwAV on fashion_mnist: 10 epochs, batch 128, small_resnet width 16 (3 stages), 2 "
        "hidden layers in the head, K=128, backend jax")
