r"""The SwAV training step of swav_keras against a hand-written PyTorch step, in one run.

The yardstick is the original's training step (`main_swav.py` of facebookresearch/swav) written
in plain PyTorch: prototypes normalised at the start of the step, one backbone pass per
resolution group (same-size crops concatenated), the head and the prototypes once on all
crops, Sinkhorn codes of the two 28x28 crops without gradient, the swapped-prediction loss,
`backward` and `torch.optim.SGD` with momentum. Its ResNet (`torch_small_resnet`) has the
layout and parameters of `swav_keras.backbones.SmallResNet` (3x3 stride-1 stem, BasicBlocks
[2, 2, 2, 2], 1x1 conv shortcuts, no bias, BatchNorm momentum 0.1 in PyTorch terms, eps 1e-5)
and runs in PyTorch's `channels_last` memory format, as the original on GPUs.
`tests/step_vs_pytorch_test.py` loads a swav_keras model's weights into it and checks that
both give the same loss on the same crops.

swav_keras trains the same workload with `model.fit` under each backend, with the same
optimizer (`keras.optimizers.SGD` with momentum; `--optimizer=lars` gives swav_keras
`LARS`, the plain step keeps SGD). Under torch, `--layers=keras,native` times the encoder
with Keras's own `Conv2D`/`BatchNormalization` and with `swav_keras.layers.NativeConv2D`/
`NativeBatchNormalization` (PyTorch's fused kernels on channels-last views,
`with_layer_implementation`). Workload: `../shared/WORKLOAD.md` (small ResNet width 16,
2 x 28x28 + 4 x 14x14 single-channel crops, head 128 -> 512 -> 64, K = 128, batch 256,
float32, fixed crops in memory).

Each backend runs in its own child process (Keras picks its backend once per process), and
each child times the plain PyTorch step too, alternating with its swav_keras variants round
by round, so every ratio compares figures taken in the same process a few seconds apart; the
ratio column is the swav_keras images/s over the plain step's (median over rounds). Then, with
`--memory`, each system runs a few steps alone in a fresh process for its peak memory: the
peak resident set (`ru_maxrss`, CPU) and its increase over the resident set after the model
was built (what the steps themselves hold), or the peak CUDA memory on a GPU.

Command (2 CPU cores, about 4 minutes):

    python -m benchmarks.step_vs_pytorch --backends=torch,tensorflow,jax

Figures are recorded in `benchmarks/RESULTS.md` ("swav_keras against plain PyTorch").
"""

import os
import platform
import resource
import sys
import time

from absl import app, flags

from benchmarks import children, fixed_batches
from benchmarks.machine import cpu_name, matmul_gflops

FLAGS = flags.FLAGS


def define_flags():
    """Defines the benchmark's flags (by the program, not at import: a test that imports this
    module may share absl's flags with a recipe's)."""
    flags.DEFINE_list("backends", ["torch", "tensorflow", "jax"], "Keras backends to measure.")
    flags.DEFINE_list(
        "layers", ["keras", "native"],
        "Under torch: encoder layer implementations to time (`keras`: Keras's Conv2D and "
        "BatchNormalization; `native`: swav_keras.layers.to_native_layers). Other backends time "
        "`keras` only (native is the same there).",
    )
    flags.DEFINE_enum("optimizer", "sgd", ["sgd", "lars"], "swav_keras's optimizer (plain: SGD).")
    flags.DEFINE_integer("batch_size", 256, "Images per step.")
    flags.DEFINE_integer("steps", 5, "Timed steps per measurement (after warm-up).")
    flags.DEFINE_integer("rounds", 3, "Measurements per system, alternating; medians reported.")
    flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first.")
    flags.DEFINE_integer("width", 16, "Small ResNet width (stage widths w, 2w, 4w, 8w).")
    flags.DEFINE_integer("num_prototypes", 128, "K.")
    flags.DEFINE_bool("memory", True, "Also measure each system's peak memory in its own process.")
    flags.DEFINE_bool("worker", False, "Internal: measure in this process and print JSON.")
    flags.DEFINE_string("memory_of", "", "Internal: measure the peak memory of this one system.")


CROPS = ((28, 2), (14, 4))
HIDDEN, PROJECTION = 512, 64
TEMPERATURE, EPSILON, SINKHORN_ITERATIONS = 0.1, 0.05, 3
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-6
FLOP_PER_IMAGE = 525e6  # forward + backward over the six crops (WORKLOAD.md)


# ---------------------------------------------------------------------- the plain PyTorch step
def torch_small_resnet(width, channels=1):
    """`swav_keras.backbones.SmallResNet(width)` in plain PyTorch (same layout and shapes)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    layers = [nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        for block in range(2):
            layers.append(Block(cin, width * multiplier, 2 if stage > 0 and block == 0 else 1))
            cin = width * multiplier
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def torch_swav_model(width, num_prototypes, channels=1):
    """Backbone, head `Linear -> BatchNorm1d -> ReLU -> Linear` and bias-free prototypes."""
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch_small_resnet(width, channels)
            self.head = nn.Sequential(
                nn.Linear(8 * width, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
                nn.Linear(HIDDEN, PROJECTION),
            )
            self.prototypes = nn.Linear(PROJECTION, num_prototypes, bias=False)

        def forward(self, crops):
            import torch
            import torch.nn.functional as F

            groups = []  # consecutive crops of one size (high-resolution first), as the original
            for size in sorted({c.shape[-1] for c in crops}, reverse=True):
                groups.append(self.backbone(torch.cat([c for c in crops if c.shape[-1] == size])))
            embeddings = F.normalize(self.head(torch.cat(groups)), dim=1, p=2)
            return self.prototypes(embeddings)

    return Net()


def torch_sinkhorn(scores, epsilon=EPSILON, iterations=SINKHORN_ITERATIONS):
    """The original's `distributed_sinkhorn` on one process: codes `[B, K]` of `scores`."""
    import torch

    with torch.no_grad():
        q = torch.exp(scores / epsilon).t()
        q /= q.sum()
        k, b = q.shape
        for _ in range(iterations):
            q /= q.sum(dim=1, keepdim=True)
            q /= k
            q /= q.sum(dim=0, keepdim=True)
            q /= b
        return (q * b).t()


def torch_swav_loss(output, batch, num_crops, crops_for_assign=(0, 1)):
    """The original's swapped-prediction loss of `output` (`[num_crops * B, K]` scores)."""
    import torch
    import torch.nn.functional as F

    loss = 0.0
    for crop_id in crops_for_assign:
        q = torch_sinkhorn(output[batch * crop_id:batch * (crop_id + 1)].detach())
        subloss = 0.0
        for view in range(num_crops):
            if view != crop_id:
                x = output[batch * view:batch * (view + 1)] / TEMPERATURE
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (num_crops - 1)
    return loss / len(crops_for_assign)


def torch_step(model, optimizer, crops):
    """One training step of the original: returns the loss (a detached tensor)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        weight = model.prototypes.weight.data.clone()
        model.prototypes.weight.copy_(F.normalize(weight, dim=1, p=2))
    output = model(crops)
    loss = torch_swav_loss(output, crops[0].shape[0], len(crops))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def copy_keras_weights(swav, model):
    """Loads a built `swav_keras.SwAV` (small ResNet encoder) into `torch_swav_model`'s net.

    Keras layers are matched by name (`conv1`, `conv{stage}_block{block}_{0,1,2}`), kernels
    turned from `[kh, kw, in, out]` to `[out, in, kh, kw]`, dense kernels transposed.
    """
    import numpy as np
    import torch

    def conv_bn(conv, bn, prefix):
        kernel = swav.encoder.get_layer(prefix + "_conv").kernel
        conv.weight.copy_(torch.from_numpy(np.transpose(_numpy(kernel), (3, 2, 0, 1))))
        _copy_bn(bn, swav.encoder.get_layer(prefix + "_bn"))

    with torch.no_grad():
        backbone = model.backbone
        conv_bn(backbone[0], backbone[1], "conv1")
        for index, block in enumerate(backbone[3:11]):
            prefix = f"conv{index // 2 + 2}_block{index % 2 + 1}"
            conv_bn(block.conv1, block.bn1, prefix + "_1")
            conv_bn(block.conv2, block.bn2, prefix + "_2")
            if block.shortcut is not None:
                conv_bn(block.shortcut[0], block.shortcut[1], prefix + "_0")
        head = swav.projection_head
        hidden, output = head.hidden, head.output_layer
        model.head[0].weight.copy_(torch.from_numpy(_numpy(hidden.kernel).T.copy()))
        model.head[0].bias.copy_(torch.from_numpy(_numpy(hidden.bias)))
        _copy_bn(model.head[1], head.batchnorm)
        model.head[3].weight.copy_(torch.from_numpy(_numpy(output.kernel).T.copy()))
        model.head[3].bias.copy_(torch.from_numpy(_numpy(output.bias)))
        model.prototypes.weight.copy_(torch.from_numpy(_numpy(swav.prototypes.kernel).T.copy()))


def _numpy(variable):
    import keras

    return keras.ops.convert_to_numpy(variable)


def _copy_bn(torch_bn, keras_bn):
    import torch

    for name, source in (("weight", keras_bn.gamma), ("bias", keras_bn.beta),
                         ("running_mean", keras_bn.moving_mean),
                         ("running_var", keras_bn.moving_variance)):
        getattr(torch_bn, name).copy_(torch.from_numpy(_numpy(source)))


# --------------------------------------------------------------------------------- workers
def _crops(batch, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return tuple(
        rng.uniform(0.0, 1.0, (batch, size, size, 1)).astype("float32")
        for size, count in CROPS for _ in range(count)
    )


def _plain_system(crops):
    """The plain PyTorch step on `crops` (NHWC NumPy): returns `run(n)` timing n steps."""
    import torch

    torch.manual_seed(0)
    model = torch_swav_model(FLAGS.width, FLAGS.num_prototypes)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    tensors = [torch.from_numpy(c).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last) for c in crops]

    def run(steps):
        loss = None
        for _ in range(steps):
            loss = torch_step(model, optimizer, tensors)
        return float(loss)

    return run


def _keras_system(crops, layers):
    """swav_keras's `fit` on `crops`: returns `run(n)` fitting n steps."""
    import keras

    import swav_keras
    from swav_keras.backbones import SmallResNet
    from swav_keras.layers import with_layer_implementation
    from swav_keras.optimizers import LARS

    keras.utils.set_random_seed(0)
    encoder, _ = with_layer_implementation(
        SmallResNet(width=FLAGS.width, input_shape=(None, None, 1)), layers
    )
    model = swav_keras.SwAV(encoder, projection_dim=PROJECTION, hidden_dim=HIDDEN,
                            num_prototypes=FLAGS.num_prototypes, temperature=TEMPERATURE,
                            epsilon=EPSILON, sinkhorn_iterations=SINKHORN_ITERATIONS)
    if FLAGS.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)
    else:
        optimizer = LARS(LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    model.compile(optimizer=optimizer)
    dataset = fixed_batches.repeated((crops,))

    def run(steps):
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
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


def measure():
    """Times the plain step and this backend's swav_keras variants, alternating."""
    import keras
    import numpy as np
    import torch

    crops = _crops(FLAGS.batch_size)
    runs = {}
    first = {}
    for name, factory in _systems():
        runs[name] = factory(crops)
        start = time.perf_counter()
        runs[name](FLAGS.warmup_steps)
        first[name] = time.perf_counter() - start
    times = {name: [] for name in runs}
    losses = {}
    for _ in range(FLAGS.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            losses[name] = run(FLAGS.steps)
            times[name].append((time.perf_counter() - start) / FLAGS.steps)
    plain = FLAGS.batch_size / float(np.median(times["pytorch"]))
    rows = []
    for name in runs:
        per_step = float(np.median(times[name]))
        rows.append({
            "system": name,
            "images_per_s": FLAGS.batch_size / per_step,
            "vs_pytorch": FLAGS.batch_size / per_step / plain,
            "spread": [min(times[name]) / per_step, max(times[name]) / per_step],
            "warmup_s": first[name],
            "loss": losses[name],
        })
    return {"backend": keras.backend.backend(), "torch_threads": torch.get_num_threads(),
            "rows": rows}


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure_memory(system):
    """Peak memory of `system` alone: a fresh process, warm-up plus one round of steps."""
    import keras

    crops = _crops(FLAGS.batch_size)
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
             "optimizer")
    args = [f"--{name}={FLAGS[name].value}" for name in names]
    args.append(f"--layers={','.join(FLAGS.layers)}")
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
    gflops = matmul_gflops()
    print(
        f"workload: small ResNet width {FLAGS.width}, crops 2x28 + 4x14 (1 channel), head "
        f"{8 * FLAGS.width}->{HIDDEN}->{PROJECTION}, K={FLAGS.num_prototypes}, batch "
        f"{FLAGS.batch_size}, float32, fixed crops; plain PyTorch: SGD momentum, swav_keras: "
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
        try:
            results.append(children.run("benchmarks.step_vs_pytorch", backend, _worker_args()))
        except children.WorkerFailed as error:
            print(error)
    if not results:
        sys.exit(1)
    ceiling = gflops * 1e9 / FLOP_PER_IMAGE if FLAGS.width == 16 else None
    print(f"{'process':<11} {'system':<26} {'images/s':>9} {'vs PyTorch':>10} {'spread':>11} "
          f"{'of ceiling':>10} {'warm-up s':>9} {'loss':>8}")
    for result in results:
        for row in result["rows"]:
            low, high = row["spread"]
            of_ceiling = (f"{row['images_per_s'] / ceiling:10.1%}" if ceiling else f"{'-':>10}")
            print(f"{result['backend']:<11} {row['system']:<26} {row['images_per_s']:9.1f} "
                  f"{row['vs_pytorch']:10.2f} {low:4.2f}-{high:4.2f}x {of_ceiling} "
                  f"{row['warmup_s']:9.1f} {row['loss']:8.4f}")
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
