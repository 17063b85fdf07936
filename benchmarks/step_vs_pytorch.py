r"""The SwAV training step of swav_keras against a hand-written PyTorch step, in one run.

The yardstick is the original's training step (`main_swav.py` of facebookresearch/swav) in
plain PyTorch, on the same network as swav_keras's (`benchmarks/plain_swav_torch.py`, its
equality checked by `tests/step_vs_pytorch_test.py`), in PyTorch's `channels_last` memory
format as the original on GPUs, with `torch.optim.SGD` and momentum.

swav_keras trains the same workload with `model.fit` under each backend, with the same
optimizer (`keras.optimizers.SGD` with momentum; `--optimizer=lars` gives swav_keras
`LARS`, the plain step keeps SGD). Under torch, `--layers=keras,native` times the encoder
with Keras's own `Conv2D`/`BatchNormalization` and with `swav_keras.layers.NativeConv2D`/
`NativeBatchNormalization` (PyTorch's fused kernels on channels-last views,
`with_layer_implementation`). Workloads (`--workload`), crops fixed in memory (on the GPU
where there is one):
- `small` (default): `../shared/WORKLOAD.md`, the reference CPU workload: small ResNet width
  16, 2 x 28x28 + 4 x 14x14 single-channel crops, head 128 -> 512 -> 64, K = 128, batch 256,
  float32.
- `resnet50`: the paper's: ResNet-50, 2 x 224x224 + 6 x 96x96 RGB crops, head 2048 -> 2048 ->
  128, K = 3000, bfloat16 (Keras's `mixed_bfloat16`; `torch.autocast` for the plain step,
  its loss in float32), for a GPU.

Each backend runs in its own child process (Keras picks its backend once per process), and
each child times the plain PyTorch step too, alternating with its swav_keras variants round
by round, so every ratio compares figures taken in the same process a few seconds apart; the
ratio column is the swav_keras images/s over the plain step's (median over rounds). On a GPU
each row also gives its framework's peak GPU memory over its timed rounds (PyTorch's peak is
reset before each; it includes what the process's other systems keep, their weights and
crops). With `--memory`, each system then runs a few steps alone in a fresh process for its
peak resident set (`ru_maxrss`) and its increase over the resident set after the model was
built (what the steps themselves hold).

Commands (2 CPU cores, about 4 minutes; one GPU):

    python -m benchmarks.step_vs_pytorch --backends=torch,tensorflow,jax
    python -m benchmarks.step_vs_pytorch --workload=resnet50 --backends=torch,jax --nomemory

Figures are recorded in `benchmarks/RESULTS.md` ("swav_keras against plain PyTorch").
"""

import os
import platform
import resource
import sys
import time

from absl import app, flags

from benchmarks import children, fixed_batches
from benchmarks import plain_swav_torch as plain
from benchmarks.machine import cpu_name, matmul_gflops

FLAGS = flags.FLAGS


def define_flags():
    """Defines the benchmark's flags (by the program, not at import: a test that imports this
    module may share absl's flags with a recipe's)."""
    flags.DEFINE_list("backends", ["torch", "tensorflow", "jax"], "Keras backends to measure.")
    flags.DEFINE_list(
        "layers", ["keras", "native"],
        "Under torch, encoder layers to time: `keras` (Keras's own) and/or `native` "
        "(`to_native_layers`); other backends time `keras`.",
    )
    flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars"], "swav_keras's optimizer (plain: SGD).")
    flags.DEFINE_integer("batch_size", 256, "Images per step.")
    flags.DEFINE_integer("steps", 5, "Timed steps per measurement (after warm-up).")
    flags.DEFINE_integer("rounds", 3, "Measurements per system, alternating; medians reported.")
    flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first.")
    flags.DEFINE_enum("workload", "small", sorted(WORKLOADS),
                      "`small`: the reference CPU workload; `resnet50`: the paper's, for a GPU.")
    flags.DEFINE_integer("width", 16, "Small ResNet width (stage widths w, 2w, 4w, 8w).")
    flags.DEFINE_list("crop_sizes", [], "High- and low-resolution crop sizes (workload's if "
                      "empty).")
    flags.DEFINE_integer("num_prototypes", None, "K (the workload's if unset).")
    flags.DEFINE_enum("precision", None, ["float32", "mixed_bfloat16"],
                      "Keras dtype policy; bfloat16 autocast for the plain step (workload's if "
                      "unset).")
    flags.DEFINE_bool("memory", True, "Also measure each system's peak memory in its own process.")
    flags.DEFINE_bool("worker", False, "Internal: measure in this process and print JSON.")
    flags.DEFINE_string("memory_of", "", "Internal: measure the peak memory of this one system.")


WORKLOADS = {
    # ../shared/WORKLOAD.md: the reference CPU workload.
    "small": {"crops": ((28, 2), (14, 4)), "channels": 1, "hidden": 512, "projection": 64,
              "num_prototypes": 128, "precision": "float32"},
    # The paper's ImageNet step (ResNet-50, 2x224 + 6x96, bfloat16), for a GPU.
    "resnet50": {"crops": ((224, 2), (96, 6)), "channels": 3, "hidden": 2048,
                 "projection": 128, "num_prototypes": 3000, "precision": "mixed_bfloat16"},
}
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-6
FLOP_PER_IMAGE = 525e6  # forward + backward over the six crops (WORKLOAD.md)


# --------------------------------------------------------------------------------- workers
def workload():
    """The chosen workload with the flags' overrides: crops `((size, count), ...)`,
    channels, head sizes, K and Keras dtype policy."""
    spec = dict(WORKLOADS[FLAGS.workload])
    if FLAGS.crop_sizes:
        sizes = [int(size) for size in FLAGS.crop_sizes]
        spec["crops"] = tuple((size, count) for size, (_, count) in zip(sizes, spec["crops"]))
    if FLAGS.num_prototypes:
        spec["num_prototypes"] = FLAGS.num_prototypes
    if FLAGS.precision:
        spec["precision"] = FLAGS.precision
    return spec


def _crops(batch, seed=0, spec=None):
    import numpy as np

    spec = spec or WORKLOADS["small"]
    rng = np.random.default_rng(seed)
    return tuple(
        rng.uniform(0.0, 1.0, (batch, size, size, spec["channels"])).astype("float32")
        for size, count in spec["crops"] for _ in range(count)
    )


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _plain_system(crops):
    """The plain PyTorch step on `crops` (NHWC NumPy): returns `run(n)` timing n steps."""
    import torch

    spec = workload()
    torch.manual_seed(0)
    if FLAGS.workload == "small":
        backbone = plain.torch_small_resnet(FLAGS.width, spec["channels"])
        features = 8 * FLAGS.width
    else:
        backbone, features = plain.torch_resnet50(spec["channels"]), 2048
    model = plain.torch_swav_model(backbone, features, spec["hidden"], spec["projection"],
                                   spec["num_prototypes"])
    model = model.to(_device(), memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    tensors = [torch.from_numpy(c).permute(0, 3, 1, 2).to(_device()).contiguous(
        memory_format=torch.channels_last) for c in crops]
    autocast = torch.bfloat16 if spec["precision"] == "mixed_bfloat16" else None

    def run(steps):
        loss = None
        for _ in range(steps):
            loss = plain.torch_step(model, optimizer, tensors, autocast)
        return float(loss)

    return run


def _keras_system(crops, layers):
    """swav_keras's `fit` on `crops`: returns `run(n)` fitting n steps."""
    import keras

    import swav_keras
    from swav_keras.backbones import ResNet50, SmallResNet
    from swav_keras.layers import with_layer_implementation
    from swav_keras.optimizers import LARS

    spec = workload()
    keras.mixed_precision.set_global_policy(spec["precision"])
    keras.utils.set_random_seed(0)
    shape = (None, None, spec["channels"])
    if FLAGS.workload == "small":
        encoder = SmallResNet(width=FLAGS.width, input_shape=shape)
    else:
        encoder = ResNet50(input_shape=shape)
    encoder, _ = with_layer_implementation(encoder, layers)
    model = swav_keras.SwAV(encoder, projection_dim=spec["projection"],
                            hidden_dim=spec["hidden"], num_prototypes=spec["num_prototypes"],
                            temperature=plain.TEMPERATURE, epsilon=plain.EPSILON,
                            sinkhorn_iterations=plain.SINKHORN_ITERATIONS)
    if FLAGS.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)
    else:
        optimizer = LARS(LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    model.compile(optimizer=optimizer)
    dataset = fixed_batches.repeated((crops,))

    def run(steps):
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return float(history.history["loss"][-1])

    return run


def _systems():
    """(name, factory) of this process's systems: the plain step first."""
    import keras

    backend = keras.backend.backend()
    layers = FLAGS.layers if backend == "torch" else ["keras"]
    systems = [("pytorch", lambda crops: _plain_system(crops))]
    for name in layers:
        systems.append((f"swav_keras/{backend}/{name}",
                        lambda crops, name=name: _keras_system(crops, name)))
    return systems


def _gpu_peak(system, reset=False):
    """Peak GPU memory (bytes) of `system`'s framework in this process, or None on a CPU.

    PyTorch's peak is reset before each measurement; JAX's cannot be, but it counts JAX's
    own allocations only (the plain step's are PyTorch's)."""
    import keras
    import torch

    if not torch.cuda.is_available():
        return None
    if system != "pytorch" and keras.backend.backend() == "jax":
        import jax

        return None if reset else jax.devices()[0].memory_stats().get("peak_bytes_in_use")
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return torch.cuda.max_memory_allocated()


def measure():
    """Times the plain step and this backend's swav_keras variants, alternating."""
    import keras
    import numpy as np
    import torch

    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # as the original's main_swav.py
    spec = workload()
    crops = _crops(FLAGS.batch_size, spec=spec)
    runs = {}
    first = {}
    for name, factory in _systems():
        runs[name] = factory(crops)
        start = time.perf_counter()
        runs[name](FLAGS.warmup_steps)
        first[name] = time.perf_counter() - start
    times = {name: [] for name in runs}
    losses = {}
    peaks = dict.fromkeys(runs)
    for _ in range(FLAGS.rounds):
        for name, run in runs.items():
            _gpu_peak(name, reset=True)
            start = time.perf_counter()
            losses[name] = run(FLAGS.steps)
            times[name].append((time.perf_counter() - start) / FLAGS.steps)
            peak = _gpu_peak(name)
            if peak is not None:
                peaks[name] = max(peak, peaks[name] or 0)
    baseline = FLAGS.batch_size / float(np.median(times["pytorch"]))
    rows = []
    for name in runs:
        per_step = float(np.median(times[name]))
        rows.append({
            "system": name,
            "images_per_s": FLAGS.batch_size / per_step,
            "vs_pytorch": FLAGS.batch_size / per_step / baseline,
            "spread": [min(times[name]) / per_step, max(times[name]) / per_step],
            "warmup_s": first[name],
            "loss": losses[name],
            "gpu_peak": peaks[name],
        })
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"backend": keras.backend.backend(), "torch_threads": torch.get_num_threads(),
            "device": device, "rows": rows}


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure_memory(system):
    """Peak memory of `system` alone: a fresh process, warm-up plus one round of steps."""
    import keras

    crops = _crops(FLAGS.batch_size, spec=workload())
    factories = dict(_systems())
    run = factories[system](crops)
    built = _rss_bytes()
    run(FLAGS.warmup_steps + FLAGS.steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cuda = None
    import torch

    if torch.cuda.is_available():
        cuda = torch.cuda.max_memory_allocated()
    return {"system": system, "backend": keras.backend.backend(), "peak_rss": peak,
            "rss_after_build": built, "cuda_peak": cuda}


# ---------------------------------------------------------------------------------- parent
def _versions():
    import importlib.metadata as md

    found = []
    for name in ("keras", "tensorflow-cpu", "tensorflow", "jax", "jaxlib", "torch", "numpy"):
        try:
            found.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(found)


def _worker_args():
    names = ("batch_size", "steps", "rounds", "warmup_steps", "width", "num_prototypes",
             "optimizer", "workload", "precision")
    args = [f"--{name}={FLAGS[name].value}" for name in names if FLAGS[name].value is not None]
    args.append(f"--layers={','.join(FLAGS.layers)}")
    if FLAGS.crop_sizes:
        args.append(f"--crop_sizes={','.join(FLAGS.crop_sizes)}")
    return args


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.layers) - {"keras", "native"})
    if not FLAGS.layers or unknown:
        raise app.UsageError(
            f"--layers takes keras and/or native; received {','.join(FLAGS.layers)!r}."
        )
    if FLAGS.worker:
        children.report(measure_memory(FLAGS.memory_of) if FLAGS.memory_of else measure())
        return
    spec = workload()
    gflops = matmul_gflops()
    network = (f"small ResNet width {FLAGS.width}" if FLAGS.workload == "small" else "ResNet-50")
    features = 8 * FLAGS.width if FLAGS.workload == "small" else 2048
    crops = " + ".join(f"{count}x{size}" for size, count in spec["crops"])
    print(
        f"workload: {network}, crops {crops} ({spec['channels']} channel"
        f"{'s' if spec['channels'] > 1 else ''}), head {features}->{spec['hidden']}->"
        f"{spec['projection']}, K={spec['num_prototypes']}, batch {FLAGS.batch_size}, "
        f"{spec['precision']}, fixed crops; plain PyTorch: SGD momentum, swav_keras: "
        f"{'SGD momentum' if FLAGS.optimizer == 'sgd' else 'LARS'}; {FLAGS.rounds} rounds of "
        f"{FLAGS.steps} timed steps after {FLAGS.warmup_steps} warm-up, medians"
    )
    print(
        f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, float32 matmul {gflops:.0f} GFLOP/s (NumPy, 2048^3)"
    )
    print(f"versions: {_versions()}")
    results = []
    for backend in FLAGS.backends:
        # JAX must not take most of a GPU up front: the plain PyTorch step shares it.
        env = children.environment(backend, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        try:
            results.append(children.run("benchmarks.step_vs_pytorch", backend, _worker_args(),
                                        env=env))
        except children.WorkerFailed as error:
            print(error)
    if not results:
        sys.exit(1)
    small16 = FLAGS.workload == "small" and FLAGS.width == 16 and not FLAGS.crop_sizes
    ceiling = gflops * 1e9 / FLOP_PER_IMAGE if small16 else None
    print(f"{'process':<11} {'system':<26} {'images/s':>9} {'vs PyTorch':>10} {'spread':>11} "
          f"{'of ceiling':>10} {'warm-up s':>9} {'loss':>8} {'GPU peak':>9}")
    for result in results:
        print(f"{result['backend']:<11} device: {result['device']}")
        for row in result["rows"]:
            low, high = row["spread"]
            of_ceiling = (f"{row['images_per_s'] / ceiling:10.1%}" if ceiling else f"{'-':>10}")
            peak = row.get("gpu_peak")
            peak = f"{peak / 2**30:6.2f} GiB" if peak else f"{'-':>9}"
            print(f"{result['backend']:<11} {row['system']:<26} {row['images_per_s']:9.1f} "
                  f"{row['vs_pytorch']:10.2f} {low:4.2f}-{high:4.2f}x {of_ceiling} "
                  f"{row['warmup_s']:9.1f} {row['loss']:8.4f} {peak}")
    if not FLAGS.memory:
        return
    print("peak memory, each system alone in a fresh process (warm-up + one round):")
    done = set()
    for result in results:
        for row in result["rows"]:
            system = row["system"]
            if system in done:
                continue
            done.add(system)
            try:
                memory = children.run("benchmarks.step_vs_pytorch", result["backend"],
                                      _worker_args() + [f"--memory_of={system}"])
            except children.WorkerFailed as error:
                print(error)
                continue
            cuda = memory["cuda_peak"]
            print(
                f"  {system:<26} (under {memory['backend']:<10}) peak RSS "
                f"{memory['peak_rss'] / 2**20:7.0f} MiB, "
                f"{(memory['peak_rss'] - memory['rss_after_build']) / 2**20:+6.0f} MiB over the "
                "built model" + ("" if cuda is None else f", CUDA peak {cuda / 2**30:.2f} GiB")
            )


if __name__ == "__main__":
    define_flags()
    app.run(main)
