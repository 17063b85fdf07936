"""The README's Python examples run as pasted: every ```python block, in order, in one fresh
interpreter under the active backend, with `fit` cut to two steps (`examples.SHORT_FIT_PREAMBLE`).
"""

import os
import subprocess
import sys

import keras
from examples import SHORT_FIT_PREAMBLE, python_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        return python_blocks(f.read())


def test_readme_has_examples_and_the_finder_sees_them():
    blocks = readme_blocks()
    assert len(blocks) >= 2
    assert all("import swav_keras" in block for block in blocks[:1])
    assert python_blocks("text\n```python\n  x = 1\n  y = 2\n```\n```bash\nls\n```\n") == [
        "x = 1\ny = 2\n"
    ]


def test_readme_examples_run_in_order(tmp_path):
    script = SHORT_FIT_PREAMBLE + "\n".join(readme_blocks())
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # The first example saves the encoder; it loads back and takes raw pixels.
    encoder = keras.saving.load_model(tmp_path / "encoder.keras")
    assert tuple(encoder.output.shape)[1:] == (128,)
