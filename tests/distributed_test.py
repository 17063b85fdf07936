"""Distributed SwAV equals one device on the same global batch, on each backend's engine.

Each run is a fresh process (`distributed_worker.py`: device counts are fixed before the
backend starts) fitting 3 steps of a 16-image global batch; the files it writes hold every
weight (BatchNorm statistics, prototype counts and step counter included) and the losses.
Under the matching backend:

- tensorflow: `MirroredStrategy` on 2 logical CPUs;
- jax: `keras.distribution.DataParallel` on 4 host devices (GSPMD);
- torch: 2 processes of a gloo `torch.distributed` group.

Each equality has its counterpart where the mechanism is disabled (per-replica Sinkhorn,
un-averaged gradients) and the results differ, so the tests can fail. The tolerance, 1e-5,
sits above the float32 noise floor of the comparison (a single-device run on the same batch
in reversed order differs from the original by about 1e-6 here).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

from swav_keras import sinkhorn

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
TOLERANCE = 1e-5
# Queued embeddings come out of the whole network: on one device the same batches in reversed
# order already move them by 1.5e-5 (measured), so the queue gets its own tolerance.
QUEUE_TOLERANCE = 5e-5
QUEUE = "--queue_length=32"  # 2 global batches of 16: full after step 2, used at step 3


def _env(processes=1):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    if processes > 1:
        # As torchrun does: the cores are split over the processes. Two processes each
        # running as many OpenMP threads as there are cores oversubscribe this machine.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return env


def run_processes(commands, envs, timeout=900):
    """Runs the commands together; fails with their output, never leaves one running.

    Each writes to a file, not a pipe: a process blocked on a full pipe (TensorFlow logs each
    collective it traces) while its peers wait for it in a collective would hang them all.
    """
    logs = [tempfile.TemporaryFile() for _ in commands]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            for command, env, log in zip(commands, envs, logs)]
    try:
        for run, log in zip(runs, logs):
            run.wait(timeout=timeout)
            log.seek(0)
            assert run.returncode == 0, log.read().decode()[-3000:]
    finally:
        for run in runs:  # a failed or hung process must not keep its peers waiting
            if run.poll() is None:
                run.kill()
                run.wait()
        for log in logs:
            log.close()


def run_worker(path, mode, *flags):
    """Runs the worker (both processes for torch); returns the saved state as a dict."""
    out = str(path)
    command = [sys.executable, WORKER, f"--mode={mode}", f"--out={out}", *flags]
    if mode != "torch":
        run_processes([command], [_env()])
    else:
        port = _free_port()
        run_processes([command + [f"--rank={rank}", "--world_size=2", f"--port={port}"]
                       for rank in range(2)], [_env(processes=2)] * 2)
    with np.load(out) as state:
        return {k: state[k] for k in state.files}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def max_difference(a, b):
    """Largest absolute difference over every saved array (weights, statistics, losses)."""
    assert sorted(a) == sorted(b)
    return max(
        float(np.max(np.abs(a[k].astype("float64") - b[k].astype("float64"))))
        for k in a
        if k not in ("devices", "jit_compile", "queue", "queue_filled") and a[k].size
    )


def assert_same_queue(a, b):
    """The union of the replicas' queues holds the single-device queue's embeddings."""
    assert int(a["queue_filled"]) == int(b["queue_filled"]) == 32
    assert a["queue"].shape == b["queue"].shape == (2, 32, 8)
    difference = float(np.max(np.abs(a["queue"] - b["queue"])))
    assert difference <= QUEUE_TOLERANCE, f"queues differ by {difference:.3g}"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return run_worker(tmp_path_factory.mktemp("single") / "single.npz", "single")


@pytest.fixture(scope="module")
def single_with_queue(tmp_path_factory):
    return run_worker(tmp_path_factory.mktemp("single") / "queue.npz", "single", QUEUE)


def assert_trained(state):
    """The loss fell: the runs being compared did train."""
    assert np.all(np.isfinite(state["losses"]))
    assert state["losses"][-1] < state["losses"][0]


# Each backend's own engine: the mode of `distributed_worker.py` and its replica count.
MODE, REPLICAS = {
    "tensorflow": ("mirrored", 2),  # MirroredStrategy on 2 logical CPUs
    "jax": ("data_parallel", 4),  # DataParallel on 4 host devices (GSPMD)
    "torch": ("torch", 2),  # 2 gloo processes
}[BACKEND]


def assert_equal_runs(a, b):
    difference = max_difference(a, b)
    assert difference <= TOLERANCE, f"runs differ by {difference:.3g}"


def test_distributed_equals_one_device(tmp_path, single):
    distributed = run_worker(tmp_path / "distributed.npz", MODE)
    assert int(distributed["devices"]) == REPLICAS
    assert_trained(distributed)
    assert_equal_runs(distributed, single)


def test_distributed_with_queue_equals_one_device(tmp_path, single_with_queue):
    distributed = run_worker(tmp_path / "distributed.npz", MODE, QUEUE)
    assert_equal_runs(distributed, single_with_queue)
    assert_same_queue(distributed, single_with_queue)


def test_distributed_queue_survives_saving_and_loading(tmp_path, single_with_queue):
    """`save_weights` then `load_weights` (a resume) keeps every replica's share of the queue."""
    reloaded = run_worker(tmp_path / "reloaded.npz", MODE, QUEUE, "--reload")
    assert int(reloaded["devices"]) == REPLICAS
    assert_equal_runs(reloaded, single_with_queue)
    assert_same_queue(reloaded, single_with_queue)


def assert_two_processes_equal_one_device(out, single_with_queue):
    """The state that process 0 saved in `out` equals the single device's, queue included."""
    with np.load(out) as saved:
        state = {k: saved[k] for k in saved.files}
    assert int(state["devices"]) == 2
    assert_trained(state)
    assert_equal_runs(state, single_with_queue)
    assert_same_queue(state, single_with_queue)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute across processes")
def test_multi_worker_equals_one_device(tmp_path, single_with_queue):
    """`MultiWorkerMirroredStrategy`: 2 processes (workers) on localhost, one CPU replica each."""
    out = str(tmp_path / "multi_worker.npz")
    cluster = {"worker": [f"localhost:{_free_port()}" for _ in range(2)]}
    commands, envs = [], []
    for rank in range(2):
        task = {"type": "worker", "index": rank}
        commands.append([sys.executable, WORKER, "--mode=multi_worker", f"--out={out}",
                         f"--rank={rank}", QUEUE])
        envs.append(dict(_env(processes=2), TF_CONFIG=json.dumps({"cluster": cluster,
                                                                   "task": task})))
    run_processes(commands, envs)
    assert_two_processes_equal_one_device(out, single_with_queue)


def _jax_cluster_envs(processes):
    """What each of `processes` JAX processes on localhost needs to find the others."""
    address = f"127.0.0.1:{_free_port()}"
    return [dict(_env(processes), JAX_COORDINATOR_ADDRESS=address,
                 JAX_NUM_PROCESSES=str(processes), JAX_PROCESS_ID=str(rank))
            for rank in range(processes)]


@pytest.mark.skipif(BACKEND != "jax", reason="jax.distributed across processes")
def test_jax_processes_equal_one_device(tmp_path, single_with_queue):
    """2 JAX processes joined by `jax.distributed` (as on 2 hosts), one CPU device each."""
    out = str(tmp_path / "jax_processes.npz")
    commands = [[sys.executable, WORKER, "--mode=jax_processes", f"--out={out}",
                 f"--rank={rank}", "--world_size=2", QUEUE] for rank in range(2)]
    run_processes(commands, _jax_cluster_envs(2))
    assert_two_processes_equal_one_device(out, single_with_queue)


def test_sync_batchnorm_layers_built_by_hand_equal_one_device(tmp_path, single):
    """`SyncBatchNormalization` in the encoder and `sync_batchnorm=True`: the same run as the
    default (plain Keras BatchNorm, "auto"), as one device."""
    distributed = run_worker(tmp_path / "sync_layers.npz", MODE, "--batchnorm=sync_layers")
    assert int(distributed["devices"]) == REPLICAS
    assert_equal_runs(distributed, single)


def test_unsynchronised_batchnorm_differs_except_under_gspmd(tmp_path, single):
    """`sync_batchnorm=False`: each replica normalises its share with its own statistics (so
    the default's equality above is the synchronisation's doing); under JAX's GSPMD the batch
    statistics are global already."""
    unsynchronised = run_worker(tmp_path / "off.npz", MODE, "--batchnorm=off")
    if MODE == "data_parallel":
        assert_equal_runs(unsynchronised, single)
    else:
        assert max_difference(unsynchronised, single) > 100 * TOLERANCE


@pytest.mark.skipif(MODE == "data_parallel", reason="GSPMD has no per-replica sums to use")
def test_distributed_with_per_replica_sinkhorn_differs(tmp_path, single):
    per_replica = run_worker(tmp_path / "per_replica.npz", MODE, "--per_replica_sinkhorn")
    assert max_difference(per_replica, single) > 100 * TOLERANCE


@pytest.mark.skipif(BACKEND != "torch", reason="only torch needs the project's averaging")
def test_processes_without_gradient_averaging_differ(tmp_path, single):
    distributed = run_worker(tmp_path / "no_average.npz", MODE, "--skip_gradient_averaging")
    assert max_difference(distributed, single) > 100 * TOLERANCE


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA compilation of a TF step")
def test_xla_compiled_step_equals_eager_step_on_one_replica(tmp_path, single):
    """`jit_compile=True` (what TPUs run) with the all-reduce hooks in the graph."""
    compiled = run_worker(tmp_path / "xla.npz", "single", "--jit_compile")
    assert bool(compiled["jit_compile"]) and not bool(single["jit_compile"])
    assert_trained(compiled)
    assert_equal_runs(compiled, single)


# ------------------------------------------------------------------------- every backend
def test_noise_floor_is_below_the_tolerance(tmp_path, single):
    """The same batch in reversed order on one device: only the summation order changes."""
    reversed_order = run_worker(tmp_path / "reversed.npz", "single", "--reverse_batch")
    assert max_difference(reversed_order, single) <= TOLERANCE / 2


def test_queue_noise_floor_is_below_its_tolerance(tmp_path, single, single_with_queue):
    reversed_order = run_worker(tmp_path / "reversed.npz", "single", "--reverse_batch", QUEUE)
    assert_same_queue(reversed_order, single_with_queue)
    # The queue joins Sinkhorn at the third step only: the runs compared do exercise it.
    np.testing.assert_allclose(single_with_queue["losses"][:2], single["losses"][:2], atol=1e-6)
    assert abs(float(single_with_queue["losses"][2] - single["losses"][2])) > 1e-2


@pytest.mark.parametrize("batch", [8, 64])
def test_sinkhorn_all_reduces_only_o_of_k_values(batch):
    """Per-sample sums stay local: one count, then K sums and K maxima, whatever the batch."""
    num_prototypes, iterations = 12, 3
    reduced = {"sum": [], "max": []}

    def recording(kind):
        def reduce(x):
            reduced[kind].append(int(np.prod(tuple(x.shape))))
            return x

        return reduce

    scores = np.random.default_rng(0).uniform(-1, 1, (batch, num_prototypes)).astype("float32")
    sinkhorn(scores, iterations=iterations, all_reduce_sum=recording("sum"),
             all_reduce_max=recording("max"))
    assert reduced["sum"] == [1] + [num_prototypes] * iterations
    assert reduced["max"] == [num_prototypes]


# ------------------------------------------------------------------ the pretraining recipe
RECIPE_FLAGS = [
    "--config=fashion_mnist", "--train_examples=256", "--batch_size=64", "--epochs=1",
    "--width=4", "--projection_dim=16", "--hidden_dim=32", "--num_prototypes=20",
    "--num_crops=2,2", "--crop_sizes=28,14", "--warmup_epochs=0", "--queue_length=128",
    "--sync_batchnorm=true", "--backup_every_steps=2",  # 4 steps: a backup mid-epoch too
]


def run_recipe(workdir, distribution, processes=1, extra_env=None):
    command = [sys.executable, "-m", "recipes.pretrain", f"--workdir={workdir}",
               f"--distribution={distribution}", *RECIPE_FLAGS]
    env = dict(_env(processes), **(extra_env or {}))
    if processes > 1 and distribution == "multi_worker":  # what TF_CONFIG says to each
        cluster = {"worker": [f"localhost:{_free_port()}" for _ in range(processes)]}
        envs = [dict(env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {
            "type": "worker", "index": rank}})) for rank in range(processes)]
    elif processes > 1 and distribution == "data_parallel":  # JAX processes, as on hosts
        envs = _jax_cluster_envs(processes)
    elif processes > 1:  # what torchrun gives each process
        port = str(_free_port())
        envs = [dict(env, RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=port) for rank in range(processes)]
    else:
        envs = [env]
    run_processes([command] * processes, envs)
    with open(os.path.join(workdir, "backup", "training_metadata.json")) as f:
        assert json.load(f)["epoch"] == 1  # the backup after the mid-epoch one
    encoder = keras.models.load_model(os.path.join(workdir, "encoder.keras"))
    # Exported with plain BatchNormalization: loads with Keras alone.
    assert not any("Sync" in type(layer).__name__ for layer in encoder.layers)
    assert encoder(np.full((2, 28, 28, 1), 128.0, "float32")).shape == (2, 32)
    return encoder


def test_recipe_trains_distributed(tmp_path):
    workdir = tmp_path / "run"
    if MODE == "torch":
        run_recipe(workdir, MODE, processes=2)
        # Process 1 keeps its own backup; process 0 writes the workdir's files.
        assert (workdir / "backup").is_dir()
        assert (workdir / "processes" / "1" / "backup").is_dir()
    elif MODE == "data_parallel":
        run_recipe(workdir, MODE,
                   extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    else:  # MirroredStrategy over this machine's one CPU device
        run_recipe(workdir, MODE)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.distributed across processes")
def test_recipe_trains_on_jax_processes(tmp_path):
    """`--distribution=data_parallel` on 2 JAX processes on localhost, as on several hosts."""
    workdir = tmp_path / "run"
    run_recipe(workdir, "data_parallel", processes=2)
    assert (workdir / "prototype_neighbours.png").is_file()  # drawn by process 0 alone
    assert (workdir / "processes" / "1" / "backup").is_dir()
    assert json.loads((workdir / "processes.json").read_text()) == {"process_count": 2}


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute across processes")
def test_recipe_trains_multi_worker(tmp_path):
    """`--distribution=multi_worker`: 2 workers on localhost, as on several hosts."""
    workdir = tmp_path / "run"
    run_recipe(workdir, "multi_worker", processes=2)
    assert (workdir / "backup").is_dir()
    assert (workdir / "processes" / "1" / "backup").is_dir()
    assert json.loads((workdir / "processes.json").read_text()) == {"process_count": 2}
