r"""The cost of distribution on CPU: `fit` step time on 1 vs 2 replicas, same global batch.

Workload: the reference CPU workload of `../shared/WORKLOAD.md` (small ResNet width 16,
2 x 28x28 + 4 x 14x14 single-channel crops, head 128 -> 512 -> 64, K = 128, batch 256, fixed
random crops in memory), with synchronised BatchNorm when distributed. Per backend, in child
processes of one run, alternating:

- 1 replica: one process, one device;
- 2 replicas on the same global batch: TensorFlow `MirroredStrategy` on 2 logical CPUs, JAX
  `DataParallel` on 2 host devices, torch 2 gloo processes of 128 images each.

It prints seconds per step (median of the rounds), the ratio 2 replicas / 1 replica, and the
float32 values handed to the all-reduce hooks per step (x 4 for bytes): Sinkhorn's (1 + 4K
per assignment crop), synchronised BatchNorm's (2C + 1 per BatchNorm call), and all of them
with the metrics', counted on one eager forward + loss of a replica. Under JAX's GSPMD the
hooks are the identity and XLA inserts the collectives, so the counts say what the method
needs, not what XLA moves. Gradients (all-reduced by every data-parallel engine) are not
counted. On 2 CPU cores the replicas share the same cores, so the ratio shows the cost of
splitting and synchronising, not a speed-up.

Command (2 CPU cores, about 10 minutes):

    python -m benchmarks.distribution_overhead --backends=tensorflow,jax,torch

Figures are recorded in `benchmarks/RESULTS.md`.
"""

import os
import platform
import socket
import time

from absl import app, flags

from benchmarks import children
from benchmarks.machine import cpu_name

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["tensorflow", "jax", "torch"], "Backends to measure, in order.")
flags.DEFINE_integer("batch_size", 256, "Global images per step.")
flags.DEFINE_integer("steps", 6, "Timed steps per measurement (after 2 warm-up steps).")
flags.DEFINE_integer("rounds", 2, "Measurements per variant, alternating; medians reported.")
flags.DEFINE_integer("replicas", 1, "Internal: replicas of a worker run.")
flags.DEFINE_integer("rank", 0, "Internal: torch process rank.")
flags.DEFINE_integer("port", 0, "Internal: torch rendezvous port.")
flags.DEFINE_bool("worker", False, "Internal: measure and print JSON.")


def _worker():
    replicas, backend = FLAGS.replicas, os.environ["KERAS_BACKEND"]
    if backend == "tensorflow" and replicas > 1:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    import keras
    import numpy as np

    from swav_keras import SwAV, backends
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import to_sync_batch_normalization

    adapter = backends.active()
    counted = {"all_reduce_sum": 0, "differentiable_all_reduce_sum": 0, "all_reduce_max": 0}
    counting_on = [False]
    for name in counted:
        original = getattr(adapter, name)

        def counting(x, original=original, name=name):
            if counting_on[0]:
                counted[name] += int(np.prod(tuple(x.shape)))
            return original(x)

        setattr(adapter, name, counting)

    scope, local = None, FLAGS.batch_size
    if replicas > 1 and backend == "tensorflow":
        import tensorflow as tf

        scope = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)]).scope()
    elif replicas > 1 and backend == "jax":
        import jax

        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    elif replicas > 1 and backend == "torch":
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(FLAGS.port))
        dist.init_process_group("gloo", rank=FLAGS.rank, world_size=replicas)
        local //= replicas

    def build():
        keras.utils.set_random_seed(0)
        encoder = SmallResNet(width=16, input_shape=(None, None, 1))
        if replicas > 1:
            encoder = to_sync_batch_normalization(encoder)
        model = SwAV(encoder, projection_dim=64, hidden_dim=512, num_prototypes=128,
                     sync_batchnorm=replicas > 1)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    if scope is not None:
        with scope:
            model = build()
    else:
        model = build()
    rng = np.random.default_rng(FLAGS.rank)
    steps = FLAGS.steps + 2
    crops = tuple(
        rng.uniform(0, 1, (local * steps, size, size, 1)).astype("float32")
        for size in (28, 28, 14, 14, 14, 14)
    )
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(crops, batch_size=local, epochs=1, shuffle=False, verbose=0, callbacks=[Timer()])
    # Values handed to the all-reduce hooks by one eager training forward + loss (tracing may
    # call them more than once per step, so the count is taken outside `fit`).
    counting_on[0] = True
    batch = tuple(c[:local] for c in crops)
    model.compute_loss(y_pred=model(batch, training=True), training=False)
    counting_on[0] = False
    sinkhorn_values = 0

    def count_sinkhorn(x):
        nonlocal sinkhorn_values
        sinkhorn_values += int(np.prod(tuple(x.shape)))
        return x

    from swav_keras import sinkhorn

    sinkhorn(np.zeros((local, 128), "float32"), all_reduce_sum=count_sinkhorn,
             all_reduce_max=count_sinkhorn)
    # Every rank reports (the parent checks each); the parent reads rank 0's.
    children.report({
        "seconds_per_step": float(np.median(times[2:])),
        "sinkhorn_values": sinkhorn_values * len(model.crops_for_assign),
        "batchnorm_values": counted["differentiable_all_reduce_sum"],
        "all_values": int(sum(counted.values())),
    })


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(backend, replicas):
    env = children.environment(backend, XLA_FLAGS=None)
    if backend == "jax" and replicas > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={replicas}"
    if backend == "torch" and replicas > 1:  # as torchrun does: the cores split over processes
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // replicas))
    args = [f"--replicas={replicas}", f"--batch_size={FLAGS.batch_size}",
            f"--steps={FLAGS.steps}"]
    ranks = replicas if backend == "torch" else 1
    port = _free_port()
    workers = [children.start("benchmarks.distribution_overhead", backend,
                              args + [f"--rank={r}", f"--port={port}"], env)
               for r in range(ranks)]
    results = [children.finish(w, f"{backend} x{replicas} rank {r}")
               for r, w in enumerate(workers)]
    return results[0]


def main(argv):
    del argv
    if FLAGS.worker:
        _worker()
        return
    import keras

    print(f"workload: small ResNet w16, 2x28+4x14 crops, K=128, global batch "
          f"{FLAGS.batch_size}, SGD; {FLAGS.steps} timed steps x {FLAGS.rounds} rounds")
    print(f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, keras {keras.__version__}")
    print("| backend | 1 replica s/step | 2 replicas s/step | 2 / 1 | float32 values "
          "all-reduced per step: Sinkhorn / synchronised BatchNorm / all |")
    print("|---|---|---|---|---|")
    for backend in FLAGS.backends:
        results = {1: [], 2: []}
        for _ in range(FLAGS.rounds):
            for replicas in (1, 2):
                results[replicas].append(_run(backend, replicas))
        one = sorted(r["seconds_per_step"] for r in results[1])[len(results[1]) // 2]
        two = sorted(r["seconds_per_step"] for r in results[2])[len(results[2]) // 2]
        counts = results[2][0]
        print(f"| {backend} | {one:.3f} | {two:.3f} | {two / one:.2f} | "
              f"{counts['sinkhorn_values']} / {counts['batchnorm_values']} / "
              f"{counts['all_values']} |", flush=True)


if __name__ == "__main__":
    app.run(main)
