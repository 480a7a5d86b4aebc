"""The tests' tiny linear cross-modal hashing method, registered as ``toy_linear`` when this module is imported.

tests/conftest.py imports it and names it in ``BITRIEVE_METHOD_MODULES`` (with tests/ on ``PYTHONPATH``), so the
``bitrieve`` processes the tests start find it too.

Not a published method. h_m = tanh(W_m · normalize(x_m)); the loss makes the scaled code inner products of the
(global) batch match the cosine similarity of the concatenated normalised features, centred over the batch (an unsupervised, DJSRH-like
similarity-preservation target, both within and across modalities) plus a quantization term mean((|h| - 1)^2).
Its heads go through :func:`bitrieve.parallel.rowwise`, so it also exercises the multi-process path.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bitrieve.methods import register_method
from bitrieve.methods.base import Count, Count0, DataInfo, HashMethod, NonNegative, Params, Positive, Probability, Stage
from bitrieve.parallel import rowwise


class ToyLinearParams(Params):
    epochs: Count = 3
    batch_size: Count = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    lr_image: Positive = 1e-2
    lr_text: Positive = 1e-2
    momentum: Probability = 0.0  # SGD only
    milestones: list[Count0] = []
    schedule_unit: Literal["epoch", "iter"] = "epoch"
    quantization: NonNegative = 0.1
    grad_clip: Positive | None = None
    drop_last: bool = False
    max_rows: Count | None = None
    sleep_per_batch: NonNegative = 0.0  # seconds; lets the resume test kill a run mid-epoch on any machine speed


@register_method("toy_linear")
class ToyLinear(HashMethod):
    name = "toy_linear"
    paper = "none (engine test method)"
    Params = ToyLinearParams

    def __init__(self, params: ToyLinearParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        self.heads = nn.ModuleDict({m: nn.Linear(info.feature_dims[m], bits) for m in self.modalities})

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.reshape(x.shape[0], -1).float(), dim=1)
        return torch.tanh(self.heads[modality](x))

    def param_groups(self):
        return {m: {"params": list(self.heads[m].parameters()), "lr": getattr(self.params, f"lr_{m}")}
                for m in self.modalities}

    def loss(self, batch):
        if self.params.sleep_per_batch:
            time.sleep(self.params.sleep_per_batch)
        feats = [F.normalize(batch[m].reshape(batch[m].shape[0], -1).float(), dim=1) for m in self.modalities]
        joint = torch.cat(feats, dim=1)
        joint = F.normalize(joint - joint.mean(0, keepdim=True), dim=1)  # centred: similarities in [-1, 1]
        target = joint @ joint.T
        h = {m: rowwise(lambda rows, m=m: self.encode(m, rows), batch[m], modules=[self.heads[m]])
             for m in self.modalities}
        hi, ht = h["image"], h["text"]
        sim = F.mse_loss(hi @ ht.T / self.bits, target) + F.mse_loss(hi @ hi.T / self.bits, target) \
            + F.mse_loss(ht @ ht.T / self.bits, target)
        quant = ((hi.abs() - 1) ** 2).mean() + ((ht.abs() - 1) ** 2).mean()
        return {"loss": sim + self.params.quantization * quant, "similarity": sim, "quantization": quant}

    def stages(self):
        p = self.params
        kwargs = {"momentum": p.momentum} if p.optimizer == "sgd" else {}
        return [Stage("main", p.epochs, self.loss, list(self.modalities), batch_size=p.batch_size,
                      optimizer=p.optimizer, optimizer_kwargs=kwargs, schedule_milestones=tuple(p.milestones),
                      schedule_unit=p.schedule_unit, grad_clip=p.grad_clip, drop_last=p.drop_last,
                      max_rows=p.max_rows)]

    def diagnostics(self, batch, labels):
        with torch.no_grad():
            hi, ht = self.encode("image", batch["image"]), self.encode("text", batch["text"])
            agree = (torch.sign(hi) == torch.sign(ht)).float().mean()
        return {"paired_bit_agreement": float(agree), "mean_abs_h": float((hi.abs().mean() + ht.abs().mean()) / 2)}
