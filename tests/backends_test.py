"""The per-backend adapters define the same public names, each listed in the package's docs."""

import ast
import os

import keras
import pytest

from swav_keras import backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADAPTERS = ("tensorflow", "jax", "torch")


def public_names(adapter):
    """Top-level public functions and assigned names of `backends/<adapter>.py`, read as text."""
    with open(os.path.join(ROOT, "backends", f"{adapter}.py")) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {name for name in names if not name.startswith("_")}


def test_every_adapter_defines_the_same_names():
    names = {adapter: public_names(adapter) for adapter in ADAPTERS}
    assert names["tensorflow"] == names["jax"] == names["torch"], names


@pytest.mark.parametrize("name", sorted(public_names("tensorflow")))
def test_every_adapter_name_is_documented(name):
    assert f"`{name}(" in backends.__doc__, f"{name} is missing from backends/__init__.py"


def test_active_adapter_is_the_keras_backend_one():
    adapter = backends.active()
    assert adapter.__name__ == f"swav_keras.backends.{keras.backend.backend()}"
    variable = keras.Variable([[1.0, 2.0]])
    values = adapter.replica_values(variable)
    assert len(values) == 1 and values[0].tolist() == [[1.0, 2.0]]
    adapter.assign_replica_values(variable, [values[0] * 3])
    assert keras.ops.convert_to_numpy(variable).tolist() == [[3.0, 6.0]]
    with pytest.raises(ValueError, match=r"one value per replica \(1\); received 2\."):
        adapter.assign_replica_values(variable, values * 2)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute's TPUs")
def test_tpu_distribution_without_a_tpu_says_what_to_do(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError) as info:
        backends.active().start_distribution("tpu")
    message = str(info.value)
    assert message.startswith("distribution='tpu' found no TPU (TPUClusterResolver(tpu='') said: ")
    assert "give the TPU's name or grpc:// address with --tpu" in message


def test_process_local_gives_the_layers_on_one_process():
    layer, model = keras.layers.Dense(2), keras.Sequential([keras.layers.Dense(3)])
    with backends.active().process_local(layer, model) as local:
        assert local[0] is layer and local[1] is model
    with backends.active().process_local() as local:
        assert local == ()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's multi-host copies")
def test_jax_local_copies_hold_the_same_weights_and_outputs():
    """What `process_local` hands out on several JAX processes, made here on one."""
    import numpy as np

    from swav_keras.backbones import SmallResNet
    from swav_keras.backends import jax as adapter
    from swav_keras.layers import ProjectionHead

    encoder = SmallResNet(4, (None, None, 1))
    head = ProjectionHead(8, 4)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 1)).astype("float32")
    features = encoder(images, training=False)
    head(features, training=False)
    for layer, x in ((encoder, images), (head, features)):
        copy = adapter._local_copy(layer)
        assert copy is not layer and len(copy.weights) == len(layer.weights) > 0
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(copy(x, training=False)),
            keras.ops.convert_to_numpy(layer(x, training=False)))


def test_only_jax_on_cpu_prefers_im2col_convolutions():
    # CI runs on CPUs: JAX's XLA convolution gradients are slow there, the others' are not.
    expected = keras.backend.backend() == "jax"
    assert backends.active().prefers_im2col_conv() is expected
