"""Marks for a slow test that need not run in each of the suite's three backend runs.

CI runs the suite once per backend inside 60 minutes (CONTRIBUTING.md). Math, and anything a
backend does its own way (checkpoints, random streams, distribution), runs in all three.
"""

import keras
import pytest

BACKEND = keras.backend.backend()

# Logic that is the same on every backend (workdir guards, callbacks, file reading).
ONCE = pytest.mark.skipif(BACKEND != "tensorflow",
                          reason="backend-independent: runs once, under TensorFlow")

# A run without TensorFlow: under TensorFlow it would only run JAX a second time.
UNDER_JAX_AND_TORCH = pytest.mark.skipif(
    BACKEND == "tensorflow",
    reason="slow; the JAX and PyTorch runs train without TensorFlow on their own backend")
