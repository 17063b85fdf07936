"""A run SIGKILLed at many points, saves included, and rerun until it ends, ends as if never
stopped: every step run once, the same weights as an uninterrupted run (`--deterministic`)."""

import csv
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from weights_file import arrays_of

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS = 3, 8  # 512 images in batches of 64
FLAGS = [
    "--config=fashion_mnist", "--deterministic", "--train_examples=512",
    "--batch_size=64", f"--epochs={EPOCHS}", "--width=4", "--hidden_dim=16",
    "--projection_dim=8", "--num_prototypes=8", "--warmup_epochs=0",
    "--knn_monitor_examples=0", "--precise_bn_examples=0", "--backup_every_steps=1",
]
# Kill points, in order: before the K-th file replace of an attempt (each backup replaces its
# previous copy, its weights and its position: 3 per step here; the first attempt writes
# config.json; each epoch's end encoder.keras and the log) or S seconds into its training.
# Each attempt gets a few steps further; the last one runs to the end.
KILLS = ["replace:1", "replace:2", "replace:4", "time:0.5", "replace:3", "replace:8",
         "time:1.0", "replace:6", "replace:11", "time:0.3", "replace:5", "replace:9",
         "time:1.5", "replace:7", "replace:13", "replace:10", ""]


def _start(workdir, kill, inputs):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.Popen(
        [sys.executable, os.path.join("tests", "killed_run.py"), *FLAGS,
         f"--augment_in_model={inputs == 'in_model'}", f"--workdir={workdir}",
         f"--kill={kill}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# One backend: the recipe's files and resume logic are the same on each, and every attempt
# starts a program (about 10 s here); torch starts and steps fastest on this CPU.
# The two inputs: tf.data makes the crops (the default), or the model does from an
# `ImageBatches` (`--augment_in_model`).
@pytest.mark.skipif(BACKEND != "torch", reason="runs once, under the torch backend")
@pytest.mark.parametrize("inputs", ["tf_data", "in_model"])
def test_killed_anywhere_and_rerun_ends_as_an_uninterrupted_run(tmp_path, inputs):
    reference = _start(tmp_path / "reference", "", inputs)  # beside the killed runs
    workdir, killed, outputs = tmp_path / "killed", 0, []
    for kill in KILLS:
        run = _start(workdir, kill, inputs)
        output = run.communicate(timeout=600)[0].decode()
        outputs.append(f"--kill={kill} -> {run.returncode}\n{output[-1500:]}")
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL, outputs[-1]
        killed += 1
    log = "\n".join(outputs)
    assert run.returncode == 0 and killed >= 12, log
    output = reference.communicate(timeout=600)[0].decode()
    assert reference.returncode == 0, output[-3000:]

    a = arrays_of(tmp_path / "reference" / "backup" / "latest.weights.h5")
    b = arrays_of(workdir / "backup" / "latest.weights.h5")
    assert sorted(a) == sorted(b) and len(a) > 20
    counters = [name for name in a if a[name].dtype.kind == "i" and a[name].shape == ()]
    assert sorted(int(b[name]) for name in counters).count(EPOCHS * STEPS) >= 2, log
    for name in a:  # no step lost or run twice, each on the batch it would have had
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name}\n{log}")
    with open(workdir / "training_log.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert len(set(epochs)) == len(epochs) and set(epochs) <= set(range(EPOCHS)), epochs
    encoder = keras.models.load_model(workdir / "encoder.keras")
    assert encoder.output_shape[-1] > 0
