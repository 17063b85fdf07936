"""Tests of `recipes.workdir.run_lock`: one run per workdir, no stale lock after a crash."""

import os
import subprocess
import sys
import textwrap

import pytest

from recipes.workdir import run_lock


def _holder_text(folder):
    with open(os.path.join(folder, "run.lock")) as f:
        return f.read()


def test_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    folder = str(tmp_path / "run")
    with run_lock(folder):
        assert _holder_text(folder).startswith(f"process {os.getpid()} on ")
        with pytest.raises(RuntimeError) as info:
            with run_lock(folder):
                pass
        holder = _holder_text(folder).strip()
        assert str(info.value) == (
            f"{folder} is in use by another run ({holder}, see {folder}/run.lock): two runs "
            "in one workdir would overwrite each other's backups. Wait for it to end or stop "
            "it, then rerun to continue; or use another --workdir."
        )
    assert _holder_text(folder) == ""  # released and emptied
    with run_lock(folder):  # free again
        pass


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    folder = str(tmp_path / "run")
    code = textwrap.dedent(f"""
        import sys, time
        from recipes.workdir import run_lock
        with run_lock({folder!r}):
            print("locked", flush=True)
            time.sleep(600)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=f"process {child.pid} on "):
            with run_lock(folder):
                pass
    finally:
        child.kill()
        child.wait()
    # The holder died without releasing: the system dropped its lock with it.
    with run_lock(folder):
        assert _holder_text(folder).startswith(f"process {os.getpid()} on ")
