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
