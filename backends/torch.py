"""PyTorch adapter: global sums through `torch.distributed` when a process group exists.

Keras 3 has no torch distribution library: each process runs `model.fit` on its shard, and
the Sinkhorn sums are all-reduced here, outside autograd (codes carry no gradient).
"""

import contextlib
import os

import torch
import torch.distributed as dist

from swav_keras.backends import (
    ONE_DEVICE,
    Distribution,
    assign_one_replica_values,
    check_distribution_name,
    layers_unchanged,
    one_replica_values,
    unchanged,
)


def _world_size():
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_reduce(x, op):
    if _world_size() == 1:
        return x
    with torch.no_grad():
        out = x.detach().clone()
        dist.all_reduce(out, op=op)
    return out


def all_reduce_sum(x):
    """Sums `x` over all processes of the default group; the identity without one."""
    return _all_reduce(x, dist.ReduceOp.SUM)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose backward pass sums the gradients over processes too."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def differentiable_all_reduce_sum(x):
    """`all_reduce_sum` that gradients flow through (synchronised BatchNorm needs it)."""
    if _world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


def all_reduce_max(x):
    """Element-wise maximum of `x` over all processes; the identity without a group."""
    return _all_reduce(x, dist.ReduceOp.MAX)


def synchronize_gradients(variables):
    """Averages each variable's gradient over processes as soon as backward produces it.

    Keras 3 has no torch distribution library, so nothing else reduces gradients across
    processes: each variable's torch parameter gets, once, a post-accumulate-grad hook that
    all-reduces its `.grad` and divides by the number of processes (what `DistributedDataParallel`
    does, without buckets). All processes run the same graph, so the hooks fire, and their
    collectives match, in the same order everywhere. Calling it again is free.

    Args:
        variables: the `keras.Variable`s whose gradients are averaged.
    """
    if _world_size() == 1:
        return
    for variable in variables:
        parameter = variable.value
        if getattr(parameter, "_swav_keras_averaged", False):
            continue
        parameter.register_post_accumulate_grad_hook(_average_gradient)
        parameter._swav_keras_averaged = True


def _average_gradient(parameter):
    dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
    parameter.grad.div_(_world_size())


def replica_local_variable_kwargs():
    """None needed: each process holds its own variables."""
    return {}


# One value per variable: each process holds (and saves) its own variables.
replica_values = one_replica_values
assign_replica_values = assign_one_replica_values


# No per-replica values and no step-log change here (Keras's TF trainer alone needs them).
first_replica_value = unchanged
step_log_value = unchanged


# Every variable lives in this process (each process holds its own copy).
process_local = layers_unchanged


def prefers_im2col_conv():
    """False: PyTorch's convolutions are faster in a whole step, on CPU too."""
    return False


def num_replicas():
    """Number of processes that share the global batch."""
    return _world_size()


def replica_index():
    """0: each torch.distributed process is one replica and seeds its own layers."""
    return 0


def gradient_scale():
    """Each process's gradient is averaged by `synchronize_gradients`: no scaling."""
    return 1.0


def start_distribution(name="auto", tpu=""):
    """Joins the `torch.distributed` process group that `torchrun` describes.

    `"torch"`: one process per device, started by `torchrun --nproc_per_node=N` (which sets
    `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`); NCCL on GPUs, gloo on CPUs. Each
    process fits its share of every global batch; Sinkhorn's sums, synchronised BatchNorm and
    gradients are all-reduced by this adapter. `"auto"` picks `torch` when `WORLD_SIZE` > 1.
    `tpu` is unused.
    """
    del tpu
    check_distribution_name(name, "torch")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if name == "none" or (name == "auto" and world <= 1):
        return ONE_DEVICE
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ValueError(
                "distribution='torch' needs the process group's environment (RANK, "
                "WORLD_SIZE, MASTER_ADDR, MASTER_PORT): start the recipe with `torchrun "
                "--nproc_per_node=N -m recipes.pretrain ...`."
            )
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    size = dist.get_world_size()
    return Distribution("torch", contextlib.nullcontext, size, dist.get_rank(), size, True)
