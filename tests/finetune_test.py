import json
import os
import warnings

import keras
import numpy as np
import pytest

from recipes.features import load_split
from recipes.finetune import _warn_if_diverged, finetune, table
from recipes.finetune_training import TwoRateSGD, train_classifier
from recipes.label_subset import label_subset
from swav_keras.backbones import SmallResNet


def _encoder(seed=0):
    keras.utils.set_random_seed(seed)
    return SmallResNet(width=4, stages=2, input_shape=(None, None, 1), mean=[72.9], std=[90.0])


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("encoder") / "encoder.keras")
    _encoder().save(path)
    return path


def test_results_hold_both_initialisations_and_the_settings(encoder_path, tmp_path):
    workdir = str(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a run that learns does not warn
        results = finetune(encoder_path, workdir, labels_per_class=6, train_examples=300,
                           test_examples=100, epochs=1, batch_size=20, seed=3, verbose=0)
    with open(os.path.join(workdir, "results.json")) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(results))
    for name in ("swav", "random_init"):
        assert 0.0 <= written[name]["top1"] <= written[name]["top5"] <= 1.0
        assert written[name]["seconds"] >= 0
        assert np.isfinite(written[name]["train_loss"])
    settings = written["settings"]
    assert settings["num_labels"] == 60 and settings["num_classes"] == 10
    assert settings["labels_per_class"] == 6 and settings["label_fraction"] is None
    assert settings["evaluated_on"] == "test" and settings["num_evaluated"] == 100
    assert settings["seed"] == 3 and settings["backend"] == keras.backend.backend()
    assert settings["trunk_learning_rate"] == 0.02 and settings["head_learning_rate"] == 0.02
    assert settings["decay_epochs"] == [12, 16] and settings["epochs"] == 1
    lines = table(written).splitlines()
    assert lines[0] == ("Fine-tuning on 60 labels of fashion_mnist (1 epochs), scored on 100 "
                        "test images:")
    assert lines[2].startswith("swav") and lines[3].startswith("random_init")


def test_a_run_that_diverges_warns_naming_the_rates_and_writes_strict_json(encoder_path,
                                                                           tmp_path):
    workdir = str(tmp_path / "run")
    with pytest.warns(UserWarning, match="it diverged") as caught:
        results = finetune(encoder_path, workdir, labels_per_class=6, train_examples=300,
                           test_examples=20, epochs=2, batch_size=20, head_learning_rate=1e4,
                           verbose=0, random_init=False)
    loss = results["swav"]["train_loss"]
    assert loss is None or loss > 2 * np.log(10)
    message = [str(w.message) for w in caught if "diverged" in str(w.message)][0]
    assert message.startswith("Fine-tuning the swav encoder ended with a ")
    assert "head_learning_rate (received 10000.0)" in message
    assert "trunk_learning_rate (received 0.02)" in message

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    with open(os.path.join(workdir, "results.json")) as f:
        json.load(f, parse_constant=refuse)


@pytest.mark.parametrize("loss, ended", [
    (float("nan"), "ended with a non-finite training loss (nan): it diverged"),
    (float("inf"), "ended with a non-finite training loss (inf): it diverged"),
    (4.7, "ended with a training loss of 4.7, over twice chance level (2 ln 10 = 4.605): it "
          "diverged"),
])
def test_the_divergence_warning_text(loss, ended):
    rates = {"head_learning_rate": 0.2, "trunk_learning_rate": 0.01}
    with pytest.warns(UserWarning) as caught:
        _warn_if_diverged("random_init", loss, 10, rates)
    assert str(caught[0].message) == (
        f"Fine-tuning the random_init encoder {ended} and its accuracy is not a result. "
        "Lower head_learning_rate (received 0.2) and trunk_learning_rate (received 0.01), "
        "choosing them with validation_fraction.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _warn_if_diverged("swav", 4.6, 10, rates)  # at most 2 ln 10 = 4.605: no warning


def test_two_rate_sgd_steps_as_torch_sgd_with_two_parameter_groups():
    trunk = keras.Variable(np.array([1.0, -2.0, 0.5], "float32"))
    head = keras.Variable(np.array([[0.3, -0.1]], "float32"))
    optimizer = TwoRateSGD(0.5, trunk_scale=0.04, head_variables=[head], momentum=0.9,
                           weight_decay=0.01)
    grads = [np.array([[0.2, -0.4, 1.0]] * 3, "float32"),
             np.array([[[1.0, 2.0]], [[-0.5, 0.3]], [[0.1, 0.1]]], "float32")]
    rates = (0.02, 0.5)  # trunk = 0.04 * 0.5
    expected = [trunk.numpy().astype("float64"), head.numpy().astype("float64")]
    buffers = [0.0, 0.0]
    for step in range(3):
        optimizer.apply([grads[0][step], grads[1][step]], [trunk, head])
        for i in range(2):  # torch.optim.SGD: buf = 0.9 buf + g + wd w; w -= lr buf
            buffers[i] = 0.9 * buffers[i] + grads[i][step] + 0.01 * expected[i]
            expected[i] = expected[i] - rates[i] * buffers[i]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trunk), expected[0], rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head), expected[1], rtol=1e-5)


class _InitialHead(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.kernel = keras.ops.convert_to_numpy(self.model.get_layer("linear").kernel).copy()


def _fit(trunk_learning_rate):
    """The trunk's trainable weights before and after one epoch, the head's likewise."""
    images, labels, _ = load_split("fashion_mnist", "train", take=200)
    chosen = label_subset(labels, labels_per_class=4)
    trunk = _encoder(seed=1)
    before = [keras.ops.convert_to_numpy(v).copy() for v in trunk.trainable_variables]
    initial = _InitialHead()
    scores, classifier = train_classifier(
        trunk, (images[chosen], labels[chosen]), (images[:50], labels[:50]), 10, epochs=1,
        batch_size=20, trunk_learning_rate=trunk_learning_rate, head_learning_rate=0.5,
        seed=0, verbose=0, callbacks=[initial])
    after = [keras.ops.convert_to_numpy(v) for v in trunk.trainable_variables]
    head = keras.ops.convert_to_numpy(classifier.get_layer("linear").kernel)
    assert 0.0 <= scores["top1"] <= scores["top5"] <= 1.0
    return before, after, initial.kernel, head


def test_with_a_trunk_rate_of_zero_only_the_head_moves():
    before, after, initial, head = _fit(trunk_learning_rate=0.0)
    assert len(before) == 30  # 10 convolutions, each with a BatchNorm gamma and beta
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert np.abs(head - initial).max() > 1e-3


def test_the_whole_trunk_is_fine_tuned():
    before, after, initial, head = _fit(trunk_learning_rate=0.02)
    unchanged = [i for i, (a, b) in enumerate(zip(before, after)) if np.array_equal(a, b)]
    assert not unchanged
    assert np.abs(head - initial).max() > 1e-3


def _refusal(tmp_path, encoder_path, **changes):
    arguments = dict(encoder=encoder_path, workdir=str(tmp_path / "run"), label_fraction=0.1,
                     train_examples=300, test_examples=50, epochs=1, verbose=0)
    arguments.update(changes)
    with pytest.raises(ValueError) as error:
        finetune(**arguments)
    return str(error.value), arguments["workdir"]


@pytest.mark.parametrize("changes, message", [
    ({"label_fraction": 1.5}, "`label_fraction` must be in (0, 1]; received label_fraction=1.5."),
    ({"label_fraction": 0.0}, "`label_fraction` must be in (0, 1]; received label_fraction=0.0."),
    ({"label_fraction": None},
     "Exactly one of `label_fraction` and `labels_per_class` must be given; received "
     "label_fraction=None, labels_per_class=None."),
    ({"labels_per_class": 5},
     "Exactly one of `label_fraction` and `labels_per_class` must be given; received "
     "label_fraction=0.1, labels_per_class=5."),
    ({"epochs": 0}, "`epochs` must be a positive integer; received epochs=0."),
    ({"batch_size": -2}, "`batch_size` must be a positive integer; received batch_size=-2."),
    ({"label_fraction": 0.001},
     "`label_fraction` must leave at least one label per class; received "
     "label_fraction=0.001: 0 labels of 300 images for 10 classes."),
])
def test_bad_settings_are_refused_by_name_before_anything_is_written(
        tmp_path, encoder_path, changes, message):
    text, workdir = _refusal(tmp_path, encoder_path, **changes)
    assert text == message
    assert not os.path.exists(workdir)


def test_missing_and_unreadable_encoders_and_a_file_workdir_are_refused(tmp_path, encoder_path):
    missing = str(tmp_path / "missing.keras")
    text, workdir = _refusal(tmp_path, missing, encoder=missing)
    assert text == f"`encoder` must be a .keras file; received encoder={missing!r}: no such file."
    assert not os.path.exists(workdir)
    corrupt = str(tmp_path / "corrupt.keras")
    with open(encoder_path, "rb") as source, open(corrupt, "wb") as target:
        target.write(source.read(300))
    text, workdir = _refusal(tmp_path, corrupt, encoder=corrupt)
    assert text == (
        f"`encoder` must be a readable .keras model; received encoder={corrupt!r}: the file "
        "exists but cannot be read as a .keras model (not a zip archive, as .keras files are: "
        "truncated, or saved in another format)."
    )
    assert not os.path.exists(workdir)
    text, _ = _refusal(tmp_path, encoder_path, encoder=None)
    assert text == "`encoder` must be a path to a .keras encoder; received encoder=None."
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    text, _ = _refusal(tmp_path, encoder_path, workdir=str(a_file))
    assert text == (f"`workdir` must be a folder, new or existing; received "
                    f"workdir={str(a_file)!r}, an existing file.")
    assert a_file.read_text() == "x"
