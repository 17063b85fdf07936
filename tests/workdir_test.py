"""Tests of `recipes/workdir.py`: one run per workdir, no stale lock after a crash, resumed only
as it was made."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from recipes import configs
from recipes.workdir import check_workdir, check_workdir_path, prepare_workdir, run_lock


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


# ------------------------------------------------------------ check_workdir / prepare_workdir
def _recorded_run(tmp_path, **run):
    """A workdir holding a run (a backup folder) of the fashion_mnist config, recorded."""
    workdir = str(tmp_path / "run")
    config = configs.get_config("fashion_mnist")
    run = {"train_examples": 1000, "seed": 0, "distribution": "none", "backend": "jax", **run}
    prepare_workdir(workdir, config, resume=True, run=run)
    os.makedirs(os.path.join(workdir, "backup"))
    return workdir, config, run


def test_a_resume_with_other_flags_names_each_with_both_values(tmp_path):
    workdir, config, run = _recorded_run(tmp_path)
    with pytest.raises(ValueError) as info:
        check_workdir(workdir, config.replace(num_prototypes=30, epochs=20), True,
                      dict(run, train_examples=None, seed=3, backend="torch"))
    assert str(info.value) == (
        f"{workdir} holds a run made with other settings: num_prototypes=128 there, 30 now; "
        "epochs=10 there, 20 now; train_examples=1000 there, None now; seed=0 there, 3 now; "
        "backend='jax' there, 'torch' now. Resuming it with them would mix two runs: rerun "
        "with the run's values, or use another --workdir."
    )
    with pytest.raises(ValueError) as info:  # only what --allow_changed could let through
        check_workdir(workdir, config.replace(epochs=20), True, run)
    assert str(info.value) == (
        f"{workdir} holds a run made with other settings: epochs=10 there, 20 now. Resuming it "
        "with them would mix two runs: rerun with the run's values, or use another --workdir; "
        "or allow the change with --allow_changed=epochs."
    )
    record = check_workdir(workdir, config.replace(epochs=20), True, run, ["epochs"])
    assert record["epochs"] == 20 and record["seed"] == 0
    # Fields used after pretraining only change freely.
    check_workdir(workdir, config.replace(knn_k=5, linear_epochs=3, precise_bn_examples=9),
                  True, run)
    with pytest.raises(ValueError) as info:
        check_workdir(workdir, config, True, run, allow_changed=["seed"])
    assert str(info.value) == (
        "`allow_changed` must name fields among ('epochs',); received "
        "allow_changed=['seed']."
    )


def test_a_run_recorded_before_the_run_flags_resumes_with_a_warning(tmp_path):
    workdir, config, run = _recorded_run(tmp_path)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    for name in ("train_examples", "seed", "distribution", "backend"):
        del saved[name]  # as written before 2026-12-04
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.warns(UserWarning) as caught:
        prepare_workdir(workdir, config, True, dict(run, seed=4))
    assert [str(w.message) for w in caught] == [
        f"{path} does not record train_examples, seed, distribution, backend (written before "
        "they were): resuming with this run's train_examples=1000, seed=4, "
        "distribution='none', backend='jax' unchecked."
    ]
    # Recorded now: the next resume checks them.
    with pytest.raises(ValueError, match=r"seed=4 there, 0 now\. "):
        check_workdir(workdir, config, True, run)
    # The configuration's own fields are still checked (a missing one at its default).
    with pytest.raises(ValueError, match=r": width=16 there, 8 now\. "):
        check_workdir(workdir, config.replace(width=8), True, dict(run, seed=4))


@pytest.mark.parametrize("inside", [False, True])
def test_a_workdir_that_is_a_file_is_refused(tmp_path, inside):
    path = tmp_path / "a_file"
    path.write_text("")
    workdir = str(path / "run") if inside else str(path)
    where = f"inside the file {str(path)!r}" if inside else "an existing file"
    with pytest.raises(ValueError) as info:
        check_workdir_path(workdir)
    assert str(info.value) == (
        f"`workdir` must be a folder, new or existing; received workdir={workdir!r}, {where}."
    )
    check_workdir_path(str(tmp_path / "new" / "run"))  # to be made: fine
