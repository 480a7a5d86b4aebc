"""Fusion modules: combine per-modality representations into one (modality-invariant) representation."""

from __future__ import annotations

import torch
from torch import nn


class ConcatFCFusion(nn.Module):
    """o = x₁ ⊕ x₂ ⊕ …; out = act(W o + b). AGCH's fusion module (Zhang et al., TMM 2022, Sec. III-C):
    B^h = tanh(f(o^h; θ_h)) with o^h = f^v ⊕ f^t — one FC on the concatenation, tanh."""

    def __init__(self, in_features: tuple[int, ...] | list[int], out_features: int, activation: str = "tanh"):
        super().__init__()
        if activation not in ("tanh", "relu", "none"):
            raise ValueError(f"ConcatFCFusion: unknown activation '{activation}' (tanh | relu | none)")
        self.in_features = tuple(int(d) for d in in_features)
        self.fc = nn.Linear(sum(self.in_features), out_features)
        self.activation = activation

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        widths = tuple(x.shape[-1] for x in xs)
        if widths != self.in_features:
            raise ValueError(f"ConcatFCFusion: expected inputs of widths {self.in_features}, got {widths}")
        h = self.fc(torch.cat(xs, dim=-1))
        if self.activation == "tanh":
            return torch.tanh(h)
        if self.activation == "relu":
            return torch.relu(h)
        return h
