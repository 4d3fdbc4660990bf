"""torchrun integration: process-group setup, rank helpers, and a gradient-keeping all-gather.

One process per device. ``torchrun`` sets RANK, LOCAL_RANK and WORLD_SIZE; without them the trainer
runs as a single process and every helper here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto", timeout_minutes: int = 120) -> DistInfo:
    """Join the torchrun process group (NCCL on GPUs, gloo on CPU) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
            device_id=chosen if use_cuda else None,
        )
    return DistInfo(rank, local_rank, world_size, chosen)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The sum over ranks of each (logging) value."""
    if not dist.is_initialized():
        return values
    names = sorted(values)
    tensor = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return dict(zip(names, tensor.tolist()))


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate the [b_r, ...] tensors of all ranks into [sum_r b_r, ...] (rank order).

    Every rank's loss reads every rank's rows, so the gradient of this rank's rows is the sum of the
    gradients all ranks computed for them: backward all-reduces the full gradient and keeps the local
    slice. Rows are padded to the largest rank's count for the gather (a batch can lose clips that
    fail to decode). Only all_gather and all_reduce are used, which gloo and NCCL both implement.
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        ctx.start = sum(sizes[: dist.get_rank()])
        ctx.rows = local.shape[0]
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.start : ctx.start + ctx.rows], None


def all_gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows in rank order, and the index of this rank's first row in them; gradients
    flow back to each rank's own rows."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return local, 0
    sizes = gather_tensor_sizes(local.shape[0], local.device)
    return _AllGatherWithGrad.apply(local, sizes), sum(sizes[: dist.get_rank()])


def gather_tensor_sizes(rows: int, device: torch.device) -> list[int]:
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, torch.tensor([rows], dtype=torch.long, device=device))
    return [int(c.item()) for c in counts]
