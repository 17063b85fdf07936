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


def in_strategy_scope():
    """`False`: `tf.distribute` strategies are TensorFlow's."""
    return False


# Every variable lives in this process (each process holds its own copy).
process_local = layers_unchanged


def prefers_im2col_conv():
    """False: PyTorch's convolutions are faster in a whole step, on CPU too."""
    return False


class _NativeOps:
    """PyTorch's own kernels for the layers whose Keras form is slow here (see `native_ops`).

    Each function takes and returns channels-last (`[B, H, W, C]`) tensors, as Keras does, but
    hands PyTorch a channels-first *view* of them: a contiguous `[B, H, W, C]` tensor is a
    `channels_last`-strided `[B, C, H, W]` one, so no copy is made on the way in or out.
    Keras's generic path copies each convolution's input to `[B, C, H, W]` and back, and
    computes BatchNorm from a dozen element-wise ops (forward and backward) where PyTorch
    runs one fused kernel each way.
    """

    @staticmethod
    def conv2d(inputs, kernel, strides, padding, dilation_rate, groups):
        """`inputs [B, H, W, Cin]`, `kernel [kh, kw, Cin / groups, Cout]` (Keras's layouts),
        symmetric `padding` per spatial axis; returns `[B, H', W', Cout]`."""
        weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        outputs = torch.nn.functional.conv2d(
            inputs.permute(0, 3, 1, 2), weight, None, tuple(strides), tuple(padding),
            tuple(dilation_rate), groups,
        )
        return outputs.permute(0, 2, 3, 1)

    @staticmethod
    def subsample(inputs, strides):
        """Every `strides`-th pixel of `inputs [B, H, W, C]` from the first (1x1 max pooling):
        a strided view, no copy."""
        return inputs[:, ::strides[0], ::strides[1], :]

    @staticmethod
    def batch_norm(inputs, gamma, beta, mean, variance, training, epsilon):
        """BatchNorm over every axis but the last; returns `(outputs, batch_mean,
        batch_variance)`, the batch statistics (biased variance, no gradient) when
        `training`, else `None`s and `mean`/`variance` are used. `inputs` may be float16 or
        bfloat16 with float32 parameters: the kernel accumulates in float32 and returns the
        inputs' dtype."""
        channels_first = inputs.movedim(-1, 1)
        if not training:
            outputs = torch.nn.functional.batch_norm(
                channels_first, mean, variance, gamma, beta, False, 0.0, epsilon
            )
            return outputs.movedim(1, -1), None, None
        outputs, batch_mean, inverse_std = torch.native_batch_norm(
            channels_first, gamma, beta, None, None, True, 0.0, epsilon
        )
        with torch.no_grad():
            batch_variance = inverse_std.pow(-2).sub_(epsilon).clamp_(min=0.0)
        return outputs.movedim(1, -1), batch_mean.detach(), batch_variance

    @staticmethod
    def all_finite(tensors):
        """A 0-d bool tensor, True when no value of `tensors` is NaN or Inf. Each tensor's
        largest magnitude is NaN or Inf exactly when it holds one, and never overflows: one
        foreach call for all (fused on CUDA where the dtypes agree), where the generic check
        runs two kernels per tensor."""
        with torch.no_grad():
            tensors = list(tensors)
            filled = [t for t in tensors if t.numel()]  # (an empty max has no identity)
            if not filled:
                return torch.tensor(True, device=tensors[0].device if tensors else None)
            peaks = torch._foreach_norm(filled, float("inf"))
            return torch.stack(peaks).isfinite().all()

    @staticmethod
    def lars_update(variables, gradients, buffers, adapted, learning_rate, momentum,
                    weight_decay, trust_coefficient, epsilon, clip, nesterov):
        """`swav_keras.optimizers.LARS.update_step` for all variables at once with
        `torch._foreach_*` kernels (a few calls per step instead of a dozen per variable).

        Args: the Keras `variables`, their `gradients`, their momentum `buffers` (Keras
        variables, or an empty list without momentum), `adapted` (one bool per variable) and
        the optimizer's hyperparameters; `learning_rate` a number, 0-d tensor or Keras variable.
        """
        # No value comes back to the host (`float`, `tolist`): on a GPU that would wait for
        # the step's kernels each step, where PyTorch's own optimizers keep queueing.
        with torch.no_grad():
            params = [v.value for v in variables]
            grads = [g.to(p.dtype) for g, p in zip(gradients, params)]
            lr = getattr(learning_rate, "value", learning_rate)  # a Keras variable, or not
            lr = torch.as_tensor(lr, dtype=torch.float32, device=params[0].device)
            chosen = [i for i, a in enumerate(adapted) if a]
            if chosen:
                p_norm = torch.stack(torch._foreach_norm([params[i] for i in chosen]))
                g_norm = torch.stack(torch._foreach_norm([grads[i] for i in chosen]))
                local_lr = trust_coefficient * p_norm / (g_norm + p_norm * weight_decay + epsilon)
                if clip:
                    local_lr = torch.where(local_lr < lr,
                                           local_lr / torch.where(lr > 0, lr, 1.0),
                                           torch.ones_like(local_lr))
                ok = (p_norm > 0) & (g_norm > 0)
                scale = torch.where(ok, local_lr, torch.ones_like(local_lr)).unbind(0)
                decay = torch.where(ok, local_lr * weight_decay,
                                    torch.zeros_like(local_lr)).unbind(0)
                scaled = torch._foreach_mul([grads[i] for i in chosen], list(scale))
                torch._foreach_add_(scaled, torch._foreach_mul([params[i] for i in chosen],
                                                               list(decay)))
                for i, g in zip(chosen, scaled):
                    grads[i] = g
            if momentum != 0:
                bufs = [b.value for b in buffers]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads)
                steps = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
            else:
                steps = grads
            torch._foreach_sub_(params, torch._foreach_mul(steps, lr))


def native_ops():
    """PyTorch's fused convolution and BatchNorm kernels on channels-last views, LARS, and a
    finite check.

    Used by `swav_keras.layers.NativeConv2D` and `NativeBatchNormalization`
    (`swav_keras.layers.to_native_layers`), by `swav_keras.optimizers.LARS` (one foreach
    update of all variables) and by `SkipNonFiniteOptimizer` (one foreach check of all
    gradients): in the SwAV step of the reference CPU workload
    Keras's generic forms of these two layers take most of the time (`benchmarks/RESULTS.md`).
    """
    return _NativeOps


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


def enable_determinism():
    """`torch.use_deterministic_algorithms(True)`, cuDNN without autotuning, and the cuBLAS
    workspace setting that deterministic CUDA matmuls require (when not set already)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
