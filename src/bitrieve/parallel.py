"""Row-wise work split across processes: the one thing a method does for multi-process training.

Under ``torchrun`` (engine/distributed.py) EVERY rank receives the whole global batch and computes the method's loss on
it, so the loss - batch-wide similarity targets, contrastive denominators, GCNs over the batch, per-item random
flips - is exactly the single-process loss. What is split is the expensive per-row work: a method passes each
network that maps rows to rows independently through :func:`rowwise`; each rank computes one contiguous shard of
the rows and the outputs are all-gathered (with gradient) back into the global batch, in global order.

Why the gradients are the single-process ones: every rank computes the same loss L on the same gathered outputs, so
the backward of the all-gather (a sum over ranks, an all-reduce) hands rank r the
gradient W·∂L/∂out_r for its own rows; its parameters receive W·J_rᵀ∂L/∂out_r, and the engine's average over the W
ranks gives Σ_r J_rᵀ∂L/∂out_r, the full gradient. Parameters used outside ``rowwise`` receive the full gradient on
every rank, which the average leaves unchanged. So the split is an optimisation that can never change the result.

A network is computed on the global batch instead (no split, every rank the same work) when, in training mode, it
holds per-row randomness (dropout: its mask must be the one drawn for the global batch, from the same seeded
generator as in one process) or batch statistics (BatchNorm). Single process, and outside the engine's training step
(:func:`split_rows`: evaluation runs on rank 0 alone), ``rowwise(fn, x)`` is ``fn(x)``.

This module imports only torch: methods may use it (they never import the engine).
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd


_SPLIT = threading.local()


@contextlib.contextmanager
def split_rows():
    """The engine's training step: inside, :func:`rowwise` splits across ranks; everywhere else (evaluation, which
    rank 0 runs alone, diagnostics, validation) it is a plain call."""
    before = getattr(_SPLIT, "on", False)
    _SPLIT.on = True
    try:
        yield
    finally:
        _SPLIT.on = before


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def splittable(modules: Iterable[nn.Module]) -> bool:
    """True when none of ``modules`` draws per-row randomness or uses batch statistics in its current mode.

    Dropout is found as ``nn.Dropout``-family layers and as a float ``dropout`` attribute (modules calling
    ``F.dropout(x, self.dropout, self.training)``, ``nn.MultiheadAttention``, ``nn.GRU``) - conservative: a
    module that has the attribute but does not draw counts as random.
    """
    for module in modules:
        for m in module.modules():
            if not m.training:
                continue
            if isinstance(m, _BatchNorm):
                return False
            if isinstance(m, _DropoutNd) and m.p > 0:
                return False
            rate = getattr(m, "dropout", None)
            if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
                return False
    return True


class _GatherRows(torch.autograd.Function):
    """All-gather of equal-sized row blocks in rank order; backward: the sum over ranks of the gradient of the
    gathered tensor (an all-reduce), of which each rank keeps its own block."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rank, size = world()
        ctx.rows = t.shape[0]
        parts = [torch.empty_like(t) for _ in range(size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def _gather(t: torch.Tensor, n: int) -> torch.Tensor:
    return _GatherRows.apply(t)[:n]


def rowwise(fn: Callable[..., Any], *rows: torch.Tensor, modules: Iterable[nn.Module] = ()) -> Any:
    """``fn(*rows)`` on the global batch, computed shard by shard across ranks (module docstring).

    ``fn`` maps each row of its inputs (dimension 0, all inputs the same length) to the same row of each output
    independently; it returns a tensor or a tuple / list of tensors with the rows in dimension 0. ``modules``: the
    networks ``fn`` runs (checked with :func:`splittable`; when one draws randomness or batch statistics the global
    batch is computed whole on every rank).
    """
    rank, size = world()
    modules = list(modules)
    if size == 1 or not getattr(_SPLIT, "on", False) or not splittable(modules):
        return fn(*rows)
    n = rows[0].shape[0]
    chunk = max(1, math.ceil(n / size))
    lo, hi = min(rank * chunk, n), min((rank + 1) * chunk, n)
    local = []
    for x in rows:
        part = x[lo:hi]
        if part.shape[0] < chunk:  # equal shard sizes for the all-gather: pad with copies of row 0, cut after
            pad = x[:1].expand(chunk - part.shape[0], *x.shape[1:])
            part = torch.cat([part, pad], dim=0)
        local.append(part)
    out = fn(*local)
    if isinstance(out, torch.Tensor):
        return _gather(out, n)
    if isinstance(out, (tuple, list)):
        return type(out)(_gather(t, n) for t in out)
    raise TypeError(f"rowwise: fn must return a tensor or a tuple of tensors, got {type(out).__name__}")
