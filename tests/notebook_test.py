"""The Colab notebook runs top to bottom on the CPU, under TensorFlow, tiny config."""

import os

import keras
import nbformat
from backend_runs import ONCE
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "recipes", "swav_colab.ipynb")


# The notebook only passes the backend on to the same calls as the README, whose examples run
# under every backend (tests/readme_test.py): it runs once, under TensorFlow.
@ONCE
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("SWAV_KERAS_NOTEBOOK_BACKEND", keras.backend.backend())
    monkeypatch.setenv("SWAV_KERAS_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("SWAV_KERAS_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}})
    client.execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert f"backend {keras.backend.backend()}" in outputs
    assert "features: (4, 32)" in outputs
    assert "kNN top-1: majority" in outputs
    assert os.path.isfile(tmp_path / "run" / "encoder.keras")


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
