"""One child process per backend for the benchmarks, and the `RESULT` line it reports back.

A benchmark compares backends side by side in one run: its parent process starts
`python -m benchmarks.<name> --worker ...` once per backend (Keras picks its backend once per
process), and each worker prints its figures as one `RESULT {json}` line. These helpers hold
that protocol in one place:

    from benchmarks import children

    if FLAGS.worker:
        children.report(measure())                      # in the worker
    ...
    result = children.run("benchmarks.my_bench", "jax", ["--steps=4"])   # in the parent
"""

import json
import os
import subprocess
import sys

PREFIX = "RESULT "
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerFailed(RuntimeError):
    """A worker exited with an error or printed no `RESULT` line."""


def report(result):
    """Prints `result` (JSON-serialisable) as the worker's `RESULT` line."""
    print(PREFIX + json.dumps(result), flush=True)


def parse(stdout):
    """The last `RESULT` object in a worker's `stdout`, or None when it printed none."""
    lines = [line for line in stdout.splitlines() if line.startswith(PREFIX)]
    return json.loads(lines[-1][len(PREFIX):]) if lines else None


def environment(backend, **extra):
    """`os.environ` with `KERAS_BACKEND=backend`, TensorFlow's logs off, this repo importable.

    Keyword arguments are set too; one given as None is removed (e.g. `XLA_FLAGS=None`).
    """
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def start(module, backend, args=(), env=None):
    """Starts `python -m module --worker *args` under `backend`; returns the `Popen`."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "--worker", *args],
        env=env if env is not None else environment(backend),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(worker, label):
    """Waits for a started worker; returns its `RESULT` object or raises `WorkerFailed`."""
    out, err = worker.communicate()
    result = parse(out)
    if worker.returncode or result is None:
        raise WorkerFailed(
            f"{label} failed (exit status {worker.returncode}"
            f"{'' if result is not None else ', no RESULT line'}):\n{err[-3000:]}"
        )
    return result


def run(module, backend, args=(), env=None):
    """Runs one worker to the end under `backend`; returns its `RESULT` object."""
    return finish(start(module, backend, args, env), backend)
