"""The pretraining workdir: one run per folder, resumed only as it was made."""

import contextlib
import dataclasses
import json
import os
import socket


def prepare_workdir(workdir, config, resume):
    """Creates the workdir; refuses to mix two different runs in one folder."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    has_run = os.path.isdir(os.path.join(workdir, "backup"))
    if has_run and not resume:
        raise ValueError(
            f"{workdir} already holds a run (backup/); with --noresume nothing is overwritten. "
            "Use another --workdir, or delete that one."
        )
    current = dataclasses.asdict(config)
    if has_run and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        # A field added to the configuration after the run began counts at its default.
        defaults = dataclasses.asdict(type(config)())
        changed = sorted(
            k for k in current
            if k not in ("epochs", "linear_epochs", "knn_k", "knn_temperature",
                          "precise_bn_examples")
            and json.loads(json.dumps(current[k])) != saved.get(k, json.loads(json.dumps(
                defaults[k])))
        )
        if changed:
            raise ValueError(
                f"{workdir} holds a run with another configuration (fields {changed} differ); "
                "resuming it with these values would mix two runs. Use another --workdir."
            )
    with open(path, "w") as f:
        json.dump(current, f, indent=2)


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
