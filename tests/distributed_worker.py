"""Runs 3 SwAV `fit` steps on a fixed global batch, on one device or distributed; saves state.

Run by `distributed_test.py` in a fresh process (device counts must be set before the backend
starts):

    KERAS_BACKEND=tensorflow python tests/distributed_worker.py --mode=mirrored --out=a.npz

Modes: `single` (one device), `mirrored` (TensorFlow `MirroredStrategy` on 2 logical CPUs),
`data_parallel` (JAX `keras.distribution.DataParallel` on 4 host devices), `jax_processes`
(one of `--world_size` JAX processes joined by `jax.distributed`, as on several hosts, under
`DataParallel` over their devices; the cluster in `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), `torch` (one of `--world_size` processes of a gloo
`torch.distributed` group); in the last two each process fits its share of every global
batch and rank 0 writes the file. Each can run with
`--per_replica_sinkhorn`, where Sinkhorn's global sums are replaced by per-replica ones (the
hook disabled), so the test can see that the hook matters.
"""

import argparse
import contextlib
import os
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--mode", required=True,
        choices=["single", "mirrored", "multi_worker", "data_parallel", "jax_processes", "torch"],
    )
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world_size", type=int, default=2)
    parser.add_argument("--port", type=int, default=29500)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--queue_length", type=int, default=0)
    parser.add_argument("--per_replica_sinkhorn", action="store_true")
    # Reverses the images of each batch: the same mathematics in another summation order,
    # which measures the float32 noise floor of the comparison.
    parser.add_argument("--reverse_batch", action="store_true")
    # torch only: leaves each process's gradients un-averaged (the hook disabled).
    parser.add_argument("--skip_gradient_averaging", action="store_true")
    # Compiles the train step with XLA (what TPUs need).
    parser.add_argument("--jit_compile", action="store_true")
    # After training, saves the weights (`save_weights`, as `BackupAndRestore` does), loads
    # them into a freshly built model on the same devices and reports that model's state.
    parser.add_argument("--reload", action="store_true")
    # The encoder's BatchNorm and `SwAV(sync_batchnorm=...)`: `keras` builds plain Keras
    # BatchNorm with the default "auto" (a user's model); `sync_layers` builds
    # `SyncBatchNormalization` layers with `True`; `off` plain BatchNorm with `False`.
    parser.add_argument("--batchnorm", default="keras", choices=["keras", "sync_layers", "off"])
    return parser.parse_args(argv)


def set_up_devices(mode):
    if mode == "data_parallel":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    if mode == "mirrored":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )


def build_model(queue_length, jit_compile=False, batchnorm="keras"):
    import keras

    from swav_keras import SwAV
    from swav_keras.layers import SyncBatchNormalization

    # A shallow encoder: the comparison is of float32 results, and a deep net's gradients on a
    # tiny batch amplify reduction-order rounding past 1e-5 even on one device.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    # One name for either class: the saved states of the runs compared have the same keys.
    layer = (SyncBatchNormalization if batchnorm == "sync_layers"
             else keras.layers.BatchNormalization)
    x = layer(name="batchnorm")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    encoder = keras.Model(inputs, x)
    model = SwAV(encoder, projection_dim=8, hidden_dim=16, num_prototypes=12,
                 queue_length=queue_length,
                 sync_batchnorm={"keras": "auto", "sync_layers": True, "off": False}[batchnorm])
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9), jit_compile=jit_compile)
    return model


def crops(steps, batch):
    import numpy as np

    rng = np.random.default_rng(1)
    sizes = (16, 16, 8, 8)
    return tuple(rng.uniform(0, 1, (steps * batch, s, s, 1)).astype("float32") for s in sizes)


def main(argv):
    args = parse_args(argv)
    set_up_devices(args.mode)
    import keras
    import numpy as np

    from swav_keras import backends

    if args.per_replica_sinkhorn:
        adapter = backends.active()
        adapter.all_reduce_sum = lambda x: x
        adapter.all_reduce_max = lambda x: x
    if args.skip_gradient_averaging:
        backends.active().synchronize_gradients = lambda variables: None
    if args.mode == "data_parallel" and args.per_replica_sinkhorn:
        raise SystemExit("GSPMD has no per-replica sums to fall back to.")

    data = crops(args.steps, args.batch)
    scope = contextlib.nullcontext
    if args.mode == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        scope = strategy.scope
        with scope():
            model = build_model(args.queue_length, batchnorm=args.batchnorm)
        devices = strategy.num_replicas_in_sync
    elif args.mode == "multi_worker":  # one CPU replica per process, the cluster in TF_CONFIG
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        scope = strategy.scope
        with scope():
            model = build_model(args.queue_length, batchnorm=args.batchnorm)
        devices = strategy.num_replicas_in_sync
    elif args.mode == "data_parallel":
        import jax

        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
        model = build_model(args.queue_length, batchnorm=args.batchnorm)
        devices = None  # read after training from where the variables live
    elif args.mode == "jax_processes":
        backends.active().start_distribution("data_parallel")  # jax.distributed from the env
        # Each process feeds its own share of the global batch, as the torch processes do.
        keras.distribution.distribution().auto_shard_dataset = False
        model = build_model(args.queue_length, batchnorm=args.batchnorm)
        devices = None
    elif args.mode == "torch":
        import torch.distributed as dist

        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(args.port)
        dist.init_process_group("gloo", rank=args.rank, world_size=args.world_size)
        model = build_model(args.queue_length, batchnorm=args.batchnorm)
        devices = dist.get_world_size()
    else:
        model = build_model(args.queue_length, args.jit_compile, args.batchnorm)
        devices = 1

    # Each torch or JAX process fits its contiguous share of every global batch (the other
    # modes split the global batch the same way inside `fit`).
    shards = args.world_size if args.mode in ("torch", "jax_processes") else 1
    local = args.batch // shards
    losses = []
    for step in range(args.steps):
        batch = tuple(c[step * args.batch:(step + 1) * args.batch] for c in data)
        if args.reverse_batch:
            batch = tuple(c[::-1] for c in batch)
        if shards > 1:
            batch = tuple(c[args.rank * local:(args.rank + 1) * local] for c in batch)
        history = model.fit(batch, batch_size=local, epochs=1, shuffle=False, verbose=0)
        losses.append(history.history["loss"][-1])
    if args.reload:
        path = f"{args.out}.rank{args.rank}.weights.h5"
        model.save_weights(path)
        with scope():
            model = build_model(args.queue_length, args.jit_compile, args.batchnorm)
            model(batch, training=False)  # builds the variables that the file fills
        model.load_weights(path)
    # Every weight but the queue, whose per-replica shares are compared as one set below.
    # Keys without the model name (a reloaded model is "sw_av_1").
    state = {f"w{i:03d}_{v.path.split('/', 1)[-1]}": keras.ops.convert_to_numpy(v.value)
             for i, v in enumerate(model.weights) if "queue" not in v.path}
    if model.queue is not None:
        state["queue"], state["queue_filled"] = _global_queue(model.queue, args.mode, scope)
    state["losses"] = np.array(losses)
    if devices is None:  # JAX: the devices a variable is replicated on under DataParallel
        devices = len(model.trainable_variables[0].value.sharding.device_set)
    state["devices"] = np.array(devices)
    state["jit_compile"] = np.array(bool(model.jit_compile))
    if args.mode == "torch":
        import torch.distributed as dist

        # The loss each process logs is its own shard's: average it as the others do.
        state["losses"] = _torch_mean(state["losses"])
        dist.destroy_process_group()
    if args.rank == 0:
        np.savez(args.out, **state)


def _global_queue(queue, mode, scope):
    """The union of every replica's queue, rows sorted (order differs, the set must not)."""
    import keras
    import numpy as np

    values, filled = queue.values.value, queue.filled.value
    if mode == "mirrored":  # replica-local variables: one component per replica
        shares = [v.numpy() for v in values.values]
        counts = [int(c.numpy()) for c in filled.values]
    elif mode == "multi_worker":  # one replica here: gather the others' over the cluster
        import tensorflow as tf

        def gather():
            context = tf.distribute.get_replica_context()
            return (context.all_gather(tf.identity(values), axis=1),
                    context.all_reduce("sum", tf.identity(filled)))

        with scope():
            strategy = tf.distribute.get_strategy()
            gathered, count = strategy.run(gather)
        shares = [strategy.experimental_local_results(gathered)[0].numpy()]
        counts = [int(strategy.experimental_local_results(count)[0].numpy())]
    elif mode == "torch":
        import torch
        import torch.distributed as dist

        shares = [torch.zeros_like(values) for _ in range(dist.get_world_size())]
        dist.all_gather(shares, values.detach().contiguous())
        shares = [s.cpu().numpy() for s in shares]
        count = filled.detach().clone()
        dist.all_reduce(count)
        counts = [int(count)]
    else:
        shares = [keras.ops.convert_to_numpy(values)]
        counts = [int(keras.ops.convert_to_numpy(filled))]
    union = np.concatenate(shares, axis=1)
    ordered = [rows[np.lexsort(rows.T[::-1])] for rows in union]
    return np.stack(ordered), np.array(sum(counts))


def _torch_mean(values):
    import numpy as np
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return np.asarray(tensor / dist.get_world_size())


if __name__ == "__main__":
    main(sys.argv[1:])
