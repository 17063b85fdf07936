"""PyTorch adapter: global sums through `torch.distributed` when a process group exists.

Keras 3 has no torch distribution library: each process runs `model.fit` on its shard, and
the Sinkhorn sums are all-reduced here, outside autograd (codes carry no gradient).
"""

import torch
import torch.distributed as dist


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


def all_reduce_max(x):
    """Element-wise maximum of `x` over all processes; the identity without a group."""
    return _all_reduce(x, dist.ReduceOp.MAX)


def num_replicas():
    """Number of processes that share the global batch."""
    return _world_size()


def gradient_scale():
    """Each process's gradient is averaged by the project's optimizer wrapper: no scaling."""
    return 1.0
