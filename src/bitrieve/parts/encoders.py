"""Modality encoders that end in a hash layer and also expose their last hidden representation.

- :class:`MLPHashEncoder`: in -> hidden (ReLU) ... -> bits (tanh). AGCH's text encoder K -> 4096 -> c, and its image
  encoder in feature mode (precomputed features -> 4096 -> c).
- :class:`AlexNetHashEncoder`: ImageNet AlexNet with fc8 replaced by an FC of ``bits`` units (tanh); the hidden
  representation is fc7 (4,096-d). Needs torchvision (extra ``vision``); weights come from a local file, never the
  network. Built by ``parts/backbones.py: alexnet_fc7_layers``, as :class:`FrozenAlexNetFC7` and the backbone
  ``AlexNetFC7``.

Both return ``(hidden, code)`` so that a method can build further modules (AGCH's GCNs) on the hidden features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from bitrieve.parts.backbones import alexnet_fc7_layers, fc7_forward
from bitrieve.parts.hashing import TanhHash


class MLPHashEncoder(nn.Module):
    """Linear+ReLU blocks of widths ``hidden``, then :class:`TanhHash` to ``bits``. forward -> (hidden, code)."""

    def __init__(self, in_features: int, hidden: Sequence[int], bits: int):
        super().__init__()
        if not hidden:
            raise ValueError("MLPHashEncoder: give at least one hidden width")
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.hash = TanhHash(widths[-1], bits)
        self.in_features = in_features
        self.hidden_features = widths[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.reshape(x.shape[0], -1).float()
        if x.shape[1] != self.in_features:
            raise ValueError(f"MLPHashEncoder: expected inputs of width {self.in_features}, got {x.shape[1]}")
        h = self.body(x)
        return h, self.hash(h)


class AlexNetHashEncoder(nn.Module):
    """AlexNet conv1-fc7 (ImageNet weights from ``weights``; random init if None) + FC(4096 -> bits) + tanh.

    forward -> (fc7 features after ReLU, code). ``trainable=False`` freezes conv1-fc7 (only the hash layer trains).
    """

    hidden_features = 4096

    def __init__(self, bits: int, weights: str | Path | None = None, trainable: bool = True):
        super().__init__()
        self.features, self.avgpool, self.fc67 = alexnet_fc7_layers(weights)
        self.hash = TanhHash(4096, bits)
        if not trainable:
            for module in (self.features, self.fc67):
                for p in module.parameters():
                    p.requires_grad_(False)

    def fc7(self, x: torch.Tensor) -> torch.Tensor:
        return fc7_forward(self.features, self.avgpool, self.fc67, x.float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"AlexNetHashEncoder: expected images (N, 3, H, W), got {tuple(x.shape)}")
        h = self.fc7(x)
        return h, self.hash(h)


class FrozenAlexNetFC7(nn.Module):
    """A frozen AlexNet fc7 feature extractor (eval mode, no gradients), e.g. for similarity targets."""

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        self.features, self.avgpool, self.fc67 = alexnet_fc7_layers(weights)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenAlexNetFC7":  # always eval: dropout off for a fixed target
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fc7_forward(self.features, self.avgpool, self.fc67, x.float())
