"""Multi-process training (``torchrun --nproc_per_node=N -m bitrieve train CONFIG``).

What changes against one process:
- the process group is initialised from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``/``MASTER_PORT``); backend NCCL on CUDA, gloo on CPU; each rank uses ``cuda:LOCAL_RANK`` when on CUDA;
- every rank draws the SAME global batch order (same seeded generator) and takes its own shard of every global batch
  (rows ``rank::world_size``), so the global batch is ``Stage.batch_size`` whatever the number of processes;
- after ``backward`` the gradients are averaged over ranks with one all-reduce over a flat buffer. This is what
  ``DistributedDataParallel`` does; the DDP module wrapper itself cannot be used because a ``Stage.loss`` closure calls
  the method's sub-modules directly rather than through one ``forward``;
- losses with batch-wide similarity (AGCH, DJSRH, contrastive ...) call :func:`gather_batch` to see the global batch;
  its backward sums the gradients from every rank, so with the gradient averaging above the update equals the
  single-process update on the same global batch (up to float summation order);
- only rank 0 writes the run directory, logs, evaluates and checkpoints; the others wait at a barrier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str = "cpu") -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank, world, local)


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def shard_rows(rows: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's part of one global batch (rows ``rank::world_size``)."""
    return rows[info.rank::info.world_size] if info.enabled else rows


def gather_batch(t: torch.Tensor) -> torch.Tensor:
    """All-gather ``t`` (local batch, ...) into the global batch in rank order, keeping the gradient.

    Single process: returns ``t`` unchanged. Under DDP the backward pass sums the incoming gradients over ranks and
    hands each rank its own slice (``torch.distributed.nn.functional.all_gather``), which together with the engine's
    gradient averaging reproduces the single-process gradient. Note the global order is rank-major (rank 0's rows
    first), not the order of the global batch; a method that pairs rows must gather ``batch["index"]`` the same way.
    Shards must have equal sizes (use ``drop_last`` or a global batch divisible by the world size).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()), dim=0)


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over ranks (one flat all-reduce; parameters without a gradient count as zero)."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        if p.grad is not None:  # a parameter this rank's loss never touched stays without gradient, as in 1 process
            p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
