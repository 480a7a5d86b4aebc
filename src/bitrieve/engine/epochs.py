"""One training epoch: the train split as tensors, batch assembly, and the loop over one epoch's seeded batches
(each batch's update is engine/steps.py)."""

from __future__ import annotations

import numpy as np
import torch

from bitrieve.codes.encode import as_tensor as to_tensor
from bitrieve.console import progress as progress_bar
from bitrieve.data.types import Split
from bitrieve.engine import distributed as ddp
from bitrieve.engine.optimizers import set_lrs
from bitrieve.engine.seeding import batch_order, seed_epoch
from bitrieve.engine.steps import update_batch
from bitrieve.methods.base import HashMethod, Stage

_ON_DEVICE_BYTES = 2 << 30  # training inputs smaller than this are moved to the device once


class TrainInputs:
    """The train split as tensors (on the device when small), and batch assembly."""

    def __init__(self, split: Split, method: HashMethod, device: torch.device):
        from bitrieve.data.store import WidenedArray, whole

        self.device = device
        self.supervised = bool(method.supervised)
        self.tensors = {}
        self.widen: set[str] = set()  # kept uint8 (binary tags, labels) and widened to float32 batch by batch
        for m in method.modalities:
            if isinstance(split.inputs[m], WidenedArray):
                self.widen.add(m)
            self.tensors[m] = to_tensor(whole(split.inputs, m, widen=False))  # a store file read once, as stored
        if self.supervised:
            self.tensors["label"] = to_tensor(np.asarray(split.labels))
            if self.tensors["label"].dtype != torch.float32:
                self.widen.add("label")
        total = sum(t.numel() * t.element_size() for t in self.tensors.values())
        self.on_device = device.type != "cpu" and total < _ON_DEVICE_BYTES
        if self.on_device:
            self.tensors = {k: t.to(device) for k, t in self.tensors.items()}
        self.n = len(split)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = rows.to(self.device) if self.on_device else rows
        out = {k: t[idx].to(self.device, non_blocking=True) for k, t in self.tensors.items()}
        for k in self.widen:
            out[k] = out[k].float()
        out["index"] = rows.to(self.device)
        return out


def fixed_batch(split: Split, method: HashMethod, device: torch.device, size: int
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The first ``size`` training rows (the same at every evaluation) and their labels (monitoring only)."""
    rows = torch.arange(min(size, len(split)))
    b = {m: to_tensor(split.inputs[m][: len(rows)]).to(device) for m in method.modalities}
    b["index"] = rows.to(device)
    labels = torch.from_numpy(np.ascontiguousarray(split.labels[: len(rows)])).float().to(device)
    if method.supervised:
        b["label"] = labels
    return b, labels


def run_epoch(method: HashMethod, stage: Stage, si: int, epoch: int, loss_fn, opt, bases: list[float],
              inputs: TrainInputs, scaler, autocast, seed: int, info: ddp.DistInfo, progress: bool
              ) -> dict[str, float]:
    """Train one epoch; returns the mean over batches of every term ``loss_fn`` returns."""
    gen = seed_epoch(seed, si, epoch)
    n = inputs.n if stage.max_rows is None else min(stage.max_rows, inputs.n)
    batches = batch_order(n, stage.batch_size, gen, drop_last=stage.drop_last)
    params = [p for g in opt.param_groups for p in g["params"]]
    if stage.schedule_unit == "epoch":
        set_lrs(opt, bases, stage, epoch)
    sums: dict[str, torch.Tensor] = {}
    method.train()
    bar = progress_bar(batches, desc=f"{stage.name} {epoch + 1}/{stage.epochs}", leave=False, per_epoch=True,
                       enabled=progress and info.is_main)
    for b, rows in enumerate(bar):
        if stage.schedule_unit == "iter":
            set_lrs(opt, bases, stage, epoch * len(batches) + b)
        batch = inputs.batch(rows)  # every rank the whole global batch (engine/distributed.py)
        out = update_batch(stage, loss_fn, batch, opt, params, scaler, autocast, info,  # engine/steps.py
                           f"epoch {epoch + 1} batch {b + 1}")
        loss = out["loss"]
        for k, v in out.items():
            v = v.detach().float()
            sums[k] = sums[k] + v if k in sums else v
        if progress and b % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4g}")
    bar.close()
    nb = max(len(batches), 1)
    means = {k: float(v) / nb for k, v in sums.items()}
    for g in opt.param_groups:
        means[f"lr/{g['name']}"] = float(g["lr"])
    return means
