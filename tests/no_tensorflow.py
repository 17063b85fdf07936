"""Runs a Python snippet in a fresh process where `import tensorflow` fails.

As on a machine without TensorFlow (a GPU image with only JAX or PyTorch): once Keras is
imported (which must not import TensorFlow), an import hook refuses `tensorflow` and its
submodules, so that `"tensorflow" in sys.modules` stays false as it would there (Keras checks
exactly that before touching TensorFlow).
"""

import os
import subprocess
import sys
import textwrap

_BLOCK = textwrap.dedent("""
    import sys

    import keras  # first: PyTorch's dynamo probes installed modules with find_spec on import

    assert "tensorflow" not in sys.modules, "Keras imported TensorFlow"

    class _NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("No module named 'tensorflow' (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTensorFlow())
""")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_without_tensorflow(script, backend, timeout=600):
    """Runs `script` (dedented) under `backend` from the repository root; returns stdout.

    `backend` must be `"jax"` or `"torch"`. Fails the test with the end of stderr when the
    script fails.
    """
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, os.path.join(ROOT, "tests"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _BLOCK + textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def other_backend(backend):
    """The backend to run without TensorFlow: the active one, or JAX under TensorFlow."""
    return "jax" if backend == "tensorflow" else backend
