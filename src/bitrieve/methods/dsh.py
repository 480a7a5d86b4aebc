"""DSH: Liu, Wang, Shan, Chen, "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016.

Training (Sec. 3 and the official Caffe release, lhmRyan/deep-supervised-hashing-DSH):
- online pairs: every pair i < j of a mini-batch, similar when the two share a label (``losses/pairwise.py``);
- loss per mini-batch: sum_{i<j} 1/2 [s ||b_i - b_j||^2 + (1 - s) max(m - ||b_i - b_j||^2, 0)] / (n(n - 1))
  + alpha * sum_i || |b_i| - 1 ||_1 / n, with m = 2 * bits and alpha = 0.01 (Sec. 3; the 1/2 is the paper's and
  matches the gradient the Caffe layer back-propagates, see ``losses/pairwise.py``);
- network: the small CNN of ``parts/backbones.DSHNet`` trained from scratch, real-valued outputs, sign at test time;
- SGD lr 1e-3, momentum 0.9, weight decay 0.004, batch 200, 70,000 iterations, lr x 0.1 at 60,000 and 65,000
  (``CIFAR-10/solver.prototxt``); images minus the training mean image (Caffe ``mean.binaryproto``) on the 0-255
  scale, random horizontal mirror in training.

Longer codes from the 12-bit model (official ``CIFAR-10/finetune.sh`` + ``finetune_solver.prototxt``): every layer
but the hash layer is copied from a trained run (``init_from``), the hash layer (renamed ``ip1_f`` there, so Caffe
re-initialises it) starts from Xavier weights at 10x the learning rate; SGD lr 1e-4, lr x 0.6 every 4,000 iterations,
30,000 iterations (``configs/dsh_cifar10_finetune.yaml``). Without ``init_from`` every run trains from scratch.

Mixed precision: under ``--amp bf16`` the network runs in bf16 and the loss in fp32 (squared distances against a
margin of 2 * bits lose their small differences in bf16's 8-bit mantissa).

Other backbones: ``alexnet`` (fc7 -> Linear(4096, bits)) and ``identity`` (feature mode: precomputed features ->
Linear(d, 500) -> ReLU -> Linear(500, bits), the fully connected part of the small CNN).
Deviations: Caffe's bias lr x 2 / no bias decay is not reproduced; the paper's protocol trains on the 50,000
CIFAR-10 training images and uses the 10,000 test images as both queries and database (the store decides).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn

from bitrieve.losses.pairwise import dsh_pair_loss
from bitrieve.losses.quantization import dsh_abs_regularizer
from bitrieve.methods import register_method
from bitrieve.methods.base import Batch, Count, Count0, DataInfo, Fraction, NonNegative, Positive, Stage
from bitrieve.methods.families.image import ImageHashing, ImageHashingParams
from bitrieve.checkpoint import load_checkpoint
from bitrieve.errors import BitrieveError
from bitrieve.parts.backbones import like_first_conv


class DSHParams(ImageHashingParams):
    backbone: Literal["dsh_cnn", "alexnet", "identity"] = "dsh_cnn"
    margin: NonNegative | None = None  # None: 2 * bits (paper)
    alpha: NonNegative = 0.01
    pair_weight: NonNegative = 0.5  # the paper's 1/2; 1.0 = Caffe's reported loss value
    mirror: bool = True  # random horizontal flip of pixel inputs in training (Caffe transform_param mirror)
    lr: Positive = 1e-3
    weight_decay: NonNegative = 0.004
    batch_size: Count = 200
    iterations: Count = 70_000  # the solver's max_iter; converted to epochs of the training split
    epochs: Count | None = None  # overrides `iterations` when set
    lr_decay_iters: tuple[Count0, ...] = (60_000, 65_000)
    lr_gamma: Fraction = 0.1  # lr x lr_gamma at each of lr_decay_iters (finetune_solver.prototxt: 0.6 every 4,000)
    init_from: str | None = None  # a run directory whose checkpoint initialises every layer but the hash layer
    hash_lr_mult: Positive = 1.0  # the hash layer's lr = lr x this (finetune.prototxt: lr_mult 10 on ip1_f)

    hash_neutral = ("lr_gamma", "init_from", "hash_lr_mult")


@register_method("dsh")
class DSH(ImageHashing):
    name = "dsh"
    paper = "H. Liu, R. Wang, S. Shan, X. Chen. Deep Supervised Hashing for Fast Image Retrieval. CVPR 2016."
    Params = DSHParams

    def __init__(self, params: DSHParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        if params.backbone == "dsh_cnn":
            self.head = nn.Identity()  # the small CNN ends in the bits-wide layer already
        elif params.backbone == "alexnet":
            self.head = nn.Linear(self.feature_dim, bits)
        else:
            self.head = nn.Sequential(nn.Linear(self.feature_dim, 500), nn.ReLU(), nn.Linear(500, bits))
        for m in self.head.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # training mean image (0-255 scale) for the from-scratch CNN, filled by prepare(); saved with the model
        self.register_buffer("pixel_mean", torch.zeros(self.input_shape) if params.backbone == "dsh_cnn"
                             else torch.zeros(0))

    @property
    def margin(self) -> float:
        return self.params.margin if self.params.margin is not None else 2.0 * self.bits

    def hash_layer(self) -> nn.Linear:
        """The bits-wide output layer (the last Linear: the small CNN's fc, or the head's last layer)."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)][-1]

    def init_from_run(self, run_dir: str) -> None:
        """Copy every tensor but the hash layer's from ``run_dir``'s checkpoint (Caffe's ``--weights`` with the hash
        layer renamed). Shapes must agree: the same backbone on the same image size, any code length."""
        ckpt = load_checkpoint(run_dir)
        if ckpt is None:
            raise BitrieveError(f"params.init_from: {run_dir} holds no checkpoint.safetensors (train the run that "
                                "initialises this one first)")
        skip = {n for n, p in self.named_parameters() if any(p is q for q in self.hash_layer().parameters())}
        own = self.state_dict()
        wanted = [k for k in own if k not in skip and k != "pixel_mean"]
        missing = [k for k in wanted if k not in ckpt[0] or ckpt[0][k].shape != own[k].shape]
        if missing:
            k = missing[0]
            got = tuple(ckpt[0][k].shape) if k in ckpt[0] else "absent"
            raise BitrieveError(f"params.init_from: {run_dir}: tensor '{k}' is {got}, this model needs "
                                f"{tuple(own[k].shape)} (not a DSH run with the same backbone and image size)")
        with torch.no_grad():
            for k in wanted:
                own[k].copy_(ckpt[0][k])

    def prepare(self, train) -> None:
        if self.params.init_from is not None:
            self.init_from_run(self.params.init_from)
        if self.params.backbone == "dsh_cnn":
            x = train.inputs["image"]
            mean = np.zeros(x.shape[1:], dtype=np.float64)
            for start in range(0, len(x), 4096):  # chunked: bounded memory for any training set
                mean += x[start:start + 4096].astype(np.float64).sum(axis=0)
            self.pixel_mean.copy_(torch.from_numpy(mean / len(x)).float())

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.params.backbone == "dsh_cnn":  # Caffe: minus the training mean image, no ImageNet normalisation
            return like_first_conv(x.float() - self.pixel_mean, self.backbone)
        return super().backbone_input(x)

    def hash_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = batch["image"]
        if self.params.mirror and self.params.backbone != "identity" and x.ndim == 4:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        # the flips above are drawn for the whole (global) batch; the network is split across ranks (parallel.py)
        b = self.encode_rows(x)
        with torch.autocast(b.device.type, enabled=False):  # the loss in fp32 under --amp (module docstring)
            b = b.float()
            pair = dsh_pair_loss(b, batch["label"], self.margin, self.params.pair_weight)
            reg = dsh_abs_regularizer(b)
        return {"loss": pair["pairs"] + self.params.alpha * reg, "similar": pair["similar"],
                "dissimilar": pair["dissimilar"], "regularizer": reg}

    def param_groups(self):
        p = self.params
        if p.hash_lr_mult == 1.0:  # one group, as runs stored before the switch
            return super().param_groups()
        hash_params = list(self.hash_layer().parameters())
        rest = [q for q in self.parameters() if not any(q is h for h in hash_params)]
        return {"net": {"params": rest, "lr": p.lr}, "hash": {"params": hash_params, "lr": p.lr * p.hash_lr_mult}}

    def epochs(self) -> int:
        p = self.params
        if p.epochs is not None:
            return p.epochs
        return max(1, math.ceil(p.iterations * p.batch_size / max(1, self.info.num_train)))

    def stages(self) -> list[Stage]:
        p = self.params
        return [self.sgd_stage(self.epochs(), schedule_milestones=tuple(p.lr_decay_iters), schedule_gamma=p.lr_gamma,
                               schedule_unit="iter", drop_last=True)]  # Caffe feeds full batches; pairs need n >= 2

    def diagnostics(self, batch: Batch, labels: torch.Tensor | None) -> dict[str, float]:
        with torch.no_grad():
            b = self.encode("image", batch["image"])
        return {"mean_abs_b": float(b.abs().mean()), "frac_near_pm1": float(((b.abs() - 1).abs() < 0.5).float().mean())}
