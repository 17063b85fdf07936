"""Tests of `benchmarks.children`: the per-backend worker processes of the benchmarks."""

import os
import textwrap

import pytest

from benchmarks import children

WORKER = textwrap.dedent("""
    import json, os, sys
    from benchmarks import children
    args = sys.argv[1:]
    if "--fail" in args:
        print("RESULT {}")
        sys.stderr.write("boom: the measurement broke\\n")
        sys.exit(3)
    print("log line before the result")
    if "--silent" not in args:
        print("RESULT " + json.dumps({"early": True}))
        children.report({"args": args, "backend": os.environ["KERAS_BACKEND"]})
    print("log line after the result")
""")


@pytest.fixture
def worker_env(tmp_path):
    (tmp_path / "fake_benchmark.py").write_text(WORKER)
    env = children.environment("jax")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


def test_parse_takes_the_last_result_line_and_ignores_the_rest():
    out = 'noise\nRESULT {"a": 1}\nRESULT {"a": 2}\ntail\n'
    assert children.parse(out) == {"a": 2}
    assert children.parse("no result here\nRESULTS {}\n") is None


def test_environment_sets_the_backend_and_removes_what_is_none(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_something")
    env = children.environment("torch", XLA_FLAGS=None, OMP_NUM_THREADS=1)
    assert env["KERAS_BACKEND"] == "torch"
    assert "XLA_FLAGS" not in env
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == children.ROOT


def test_run_returns_the_workers_result(worker_env):
    result = children.run("fake_benchmark", "jax", ["--steps=2"], worker_env)
    assert result == {"args": ["--worker", "--steps=2"], "backend": "jax"}


def test_a_failing_worker_raises_with_its_exit_status_and_error_output(worker_env):
    with pytest.raises(children.WorkerFailed) as info:
        children.run("fake_benchmark", "jax", ["--fail"], worker_env)
    message = str(info.value)
    assert message.startswith("jax failed (exit status 3):\n")
    assert "boom: the measurement broke" in message


def test_a_worker_without_result_line_raises(worker_env):
    worker = children.start("fake_benchmark", "jax", ["--silent"], worker_env)
    with pytest.raises(children.WorkerFailed, match=r"^jax x2 rank 1 failed \(exit status 0, "
                                                    r"no RESULT line\)"):
        children.finish(worker, "jax x2 rank 1")
