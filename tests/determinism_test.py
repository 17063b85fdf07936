"""`enable_determinism` and `recipes.pretrain --deterministic`: equal runs on each backend."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from examples import undo_determinism
from weights_file import arrays_of

import swav_keras

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restore_determinism(monkeypatch):
    """Undoes `enable_determinism` after the test: the rest of the suite runs as before."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    yield
    undo_determinism()


def test_enable_determinism_sets_the_backend_switches(restore_determinism):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.constant(1.0) + 1.0  # TensorFlow has started, as in a program that trained
        with pytest.warns(UserWarning, match=r"^TensorFlow has started: its ops are now "
                                             r"deterministic, but concurrent ops"):
            swav_keras.enable_determinism()  # this process has run TensorFlow ops already
        from tensorflow.python.framework import config

        assert config.is_op_determinism_enabled()
    else:
        swav_keras.enable_determinism()
    if BACKEND == "torch":
        import torch

        assert torch.are_deterministic_algorithms_enabled()
    if BACKEND == "jax":
        assert "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"]


# JAX compiles the step for 40 s a run here, and its CPU kernels are deterministic already.
@pytest.mark.skipif(BACKEND == "jax", reason="slow to compile; nothing to switch on CPU")
def test_two_deterministic_recipe_runs_give_equalarrays_of(tmp_path):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    runs = [subprocess.Popen(
        [sys.executable, "-m", "recipes.pretrain", "--config=fashion_mnist", "--deterministic",
         "--train_examples=128", "--batch_size=32", "--epochs=1", "--width=4",
         "--hidden_dim=16", "--projection_dim=8", "--num_prototypes=8",
         "--knn_monitor_examples=0", "--precise_bn_examples=0", f"--workdir={tmp_path / run}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) for run in ("a", "b")]  # together: half the wall time on two cores
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output.decode()[-3000:]
    a, b = (arrays_of(tmp_path / run / "backup" / "latest.weights.h5") for run in ("a", "b"))
    assert sorted(a) == sorted(b) and len(a) > 20
    step = [name for name in a if a[name].dtype.kind == "i" and a[name].shape == ()]
    assert any(int(a[name]) == 4 for name in step)  # the 4 steps were taken
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
