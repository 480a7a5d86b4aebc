"""The optimiser update(s) of one training batch: ``update_batch`` (called by ``engine.epochs.run_epoch``).

A stage's batch takes one update - ``loss(batch)``, backward, optional clipping, one optimizer step over the stage's
groups - or, for a stage declared with ``steps`` (methods/base.py ``Step``), one such update per step in order, each
stepping only the step's groups on the stage's single optimizer. Gradients that reached another group are discarded
before the step, so that group's parameters, momentum buffers and weight decay are untouched (torch's SGD and Adam
skip parameters whose ``.grad`` is None). This is how DGCPN's released loop (a joint update, then image against the
binary text codes, then text against the binary image codes, all on the same batch) runs through the one engine.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from bitrieve.engine import distributed as ddp
from bitrieve.methods.base import Stage
from bitrieve.parallel import split_rows


def _checked_loss(out: Any, stage: Stage, where: str) -> torch.Tensor:
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError(f"stage '{stage.name}': loss(batch) must return a dict with key 'loss', got "
                        f"{type(out).__name__} {sorted(out) if isinstance(out, dict) else ''}")
    loss = out["loss"]
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(f"stage '{stage.name}' {where}: loss is {loss.item()} (terms: "
                                 f"{ {k: float(v) for k, v in out.items()} })")
    return loss


def _one_update(loss_fn: Callable, batch: dict[str, torch.Tensor], stage: Stage, groups: tuple[str, ...] | None,
                opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], scaler, autocast,
                info: ddp.DistInfo, where: str) -> dict[str, torch.Tensor]:
    with autocast(), split_rows():  # per-row networks split across ranks under torchrun (bitrieve/parallel.py)
        out = loss_fn(batch)
    loss = _checked_loss(out, stage, where)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if groups is not None:  # a step updates its own groups only
        for g in opt.param_groups:
            if g["name"] not in groups:
                for p in g["params"]:
                    p.grad = None
    ddp.average_gradients(params, info)
    if stage.grad_clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
    scaler.step(opt)
    scaler.update()
    return out


def update_batch(stage: Stage, loss_fn: Callable | None, batch: dict[str, torch.Tensor],
                 opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], scaler, autocast,
                 info: ddp.DistInfo, where: str) -> dict[str, torch.Tensor]:
    """Train on one batch; returns the terms to log (``loss`` first-class; steps' terms prefixed ``<step>/``).

    ``loss_fn`` is the stage's (possibly compiled) loss; it is unused for a stage with ``steps``. ``where`` names
    the epoch and batch in error messages.
    """
    if not stage.steps:
        return _one_update(loss_fn, batch, stage, None, opt, params, scaler, autocast, info, where)
    logged: dict[str, torch.Tensor] = {}
    total = None
    for step in stage.steps:
        out = _one_update(step.loss, batch, stage, tuple(step.groups), opt, params, scaler, autocast, info,
                          f"{where} step '{step.name}'")
        logged.update({f"{step.name}/{k}": v for k, v in out.items()})
        total = out["loss"].detach() if total is None else total + out["loss"].detach()
    return {"loss": total, **logged}
