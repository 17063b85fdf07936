"""The pretraining workdir: one run per folder, resumed only as it was made."""

import contextlib
import dataclasses
import json
import os
import socket
import warnings

# Besides the configuration's fields, the arguments of `recipes.pretrain.pretrain` that shape
# the run, recorded with them in `<workdir>/config.json` (`backend`: `keras.backend.backend()`).
RUN_FIELDS = ("train_examples", "seed", "distribution", "backend")
# Fields used only after pretraining: a resume takes new values and records them.
FREE_FIELDS = ("linear_epochs", "knn_k", "knn_temperature", "precise_bn_examples")
# Fields a resume may change when `--allow_changed` names them. `epochs`: the warm-up + cosine
# schedule is built anew over the new number of epochs (`recipes.builders.build_optimizer`):
# the steps already run keep the rates they had, the next ones follow the new schedule from the
# step reached (after a finished run, the rate jumps from the final one back up to where the
# longer cosine is at that step); the warm-up and the queue's start keep their steps.
CHANGEABLE_FIELDS = ("epochs",)


def check_workdir_path(workdir):
    """Checks that `workdir` is a folder, or can be made one (no file in its way)."""
    path = os.path.abspath(os.path.expanduser(workdir))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        where = "an existing file" if path == os.path.abspath(os.path.expanduser(workdir)) else (
            f"inside the file {path!r}")
        raise ValueError(
            f"`workdir` must be a folder, new or existing; received workdir={workdir!r}, "
            f"{where}."
        )


def check_allow_changed(allow_changed):
    """Returns `allow_changed` as a tuple of names among `CHANGEABLE_FIELDS`."""
    names = tuple(allow_changed or ())
    if isinstance(allow_changed, str) or any(name not in CHANGEABLE_FIELDS for name in names):
        raise ValueError(
            f"`allow_changed` must name fields among {CHANGEABLE_FIELDS}; received "
            f"allow_changed={allow_changed!r}."
        )
    return names


def _plain(value):
    """`value` as config.json holds it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _shown(value):
    return tuple(value) if isinstance(value, list) else value


def run_record(config, run=None):
    """What `config.json` records: the configuration's fields, then `run`'s (`RUN_FIELDS`)."""
    return _plain({**dataclasses.asdict(config), **(run or {})})


def check_workdir(workdir, config, resume, run=None, allow_changed=()):
    """Refuses to mix two different runs in one folder; writes nothing.

    A workdir with a backup holds a run: with `resume` it is continued only when every field
    of `config` and every entry of `run` (`RUN_FIELDS`) equals what its `config.json`
    records, but for `FREE_FIELDS` and the `CHANGEABLE_FIELDS` named in `allow_changed`. A
    configuration field missing from an older `config.json` counts at its default; a
    missing entry of `run` (recorded since 2026-12-04) is unknown: accepted with a warning.

    Returns:
        The record `prepare_workdir` writes.

    Raises:
        ValueError: the workdir holds a run and `resume` is false, or the run differs.
    """
    check_workdir_path(workdir)
    allow_changed = check_allow_changed(allow_changed)
    current = run_record(config, run)
    path = os.path.join(workdir, "config.json")
    has_run = os.path.isdir(os.path.join(workdir, "backup"))
    if has_run and not resume:
        raise ValueError(
            f"{workdir} already holds a run (backup/); with --noresume nothing is overwritten. "
            "Use another --workdir, or delete that one."
        )
    if not has_run:
        return current
    if not os.path.exists(path):
        warnings.warn(f"{workdir} holds a backup but no config.json: resuming it unchecked.",
                      stacklevel=2)
        return current
    with open(path) as f:
        saved = json.load(f)
    defaults = run_record(type(config)())
    unknown = [name for name in (run or {}) if name not in saved]
    if unknown:
        warnings.warn(
            f"{path} does not record {', '.join(unknown)} (written before they were): "
            "resuming with this run's " + ", ".join(
                f"{name}={_shown(current[name])!r}" for name in unknown) + " unchecked.",
            stacklevel=2,
        )
    changed = [
        name for name in current
        if name not in FREE_FIELDS and name not in allow_changed and name not in unknown
        and current[name] != saved.get(name, defaults.get(name))
    ]
    if changed:
        differences = "; ".join(
            f"{name}={_shown(saved.get(name, defaults.get(name)))!r} there, "
            f"{_shown(current[name])!r} now" for name in changed)
        message = (
            f"{workdir} holds a run made with other settings: {differences}. Resuming it with "
            "them would mix two runs: rerun with the run's values, or use another --workdir"
        )
        if all(name in CHANGEABLE_FIELDS for name in changed):
            names = ",".join(changed)
            message += f"; or allow the change with --allow_changed={names}"
        raise ValueError(message + ".")
    return current


def write_record(workdir, record):
    """Writes `record` (from `check_workdir`) to `<workdir>/config.json`, making the folder."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)


def prepare_workdir(workdir, config, resume, run=None, allow_changed=()):
    """Creates the workdir and records the run in its `config.json`, once `check_workdir`
    accepts it (see there); returns the record."""
    record = check_workdir(workdir, config, resume, run, allow_changed)
    write_record(workdir, record)
    return record


def check_process_count(workdir, process_count, write):
    """Refuses to resume a run with another number of processes than the one that made it.

    With several processes (torch.distributed, multi-worker TensorFlow, multi-host JAX) each
    keeps its own backup; resumed by more processes, the new ones would start from scratch
    beside the others, and by fewer, some backups would be dropped. The chief (`write`) records
    the count in `<workdir>/processes.json`. Replicas within one process may change: their
    queues are dealt out again on restore.
    """
    path = os.path.join(workdir, "processes.json")
    if os.path.isdir(os.path.join(workdir, "backup")) and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)["process_count"]
        if saved != process_count:
            raise ValueError(
                f"{workdir} holds a run of {saved} process(es), each with its own backup; "
                f"received {process_count} processes. Resume it with {saved}, or use another "
                "--workdir."
            )
    if write:
        with open(path + ".tmp", "w") as f:
            json.dump({"process_count": process_count}, f)
        os.replace(path + ".tmp", path)


@contextlib.contextmanager
def run_lock(folder):
    """Holds `<folder>/run.lock` for one run; refuses a second run of the same folder.

    Two runs in one workdir (the same command started twice, a restart while the first still
    trains) would write the same backup and logs in turn, each undoing the other's progress.
    The lock is an exclusive `flock` on the file, which the system releases when the process
    ends however it ends, so a killed run leaves no stale lock behind. The file names the
    holder while it runs and is emptied on release. On systems without `fcntl` (Windows) runs
    are not guarded.

    Raises:
        RuntimeError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (POSIX CI)
        yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "run.lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process"
            raise RuntimeError(
                f"{folder} is in use by another run ({holder}, see {path}): two runs in one "
                "workdir would overwrite each other's backups. Wait for it to end or stop "
                "it, then rerun to continue; or use another --workdir."
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
