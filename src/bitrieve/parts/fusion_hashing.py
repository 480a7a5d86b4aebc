"""Fusion hashing (UCMFH family): input projections, the per-modality hash head and the uni-modal fill.

A fusion encoder needs both modalities of an item; a cross-modal hash function must code an image from the image
alone. The uni-modal fill supplies the missing half: a constant that uses no test data, the mean training feature
of the missing modality (``train_mean``) or zeros, stored in buffers ``fill_image`` / ``fill_text`` registered
directly on the method (the checkpoint keys every stored run has).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from bitrieve.parts.hashing import l2_normalize


class HashHead(nn.Module):
    """[L2-normalise] -> Linear(d, hidden) -> ReLU -> Dropout -> Linear(hidden, bits) -> [tanh] -> L2-normalise.

    UCMFH's ImageMlp / TextMlp (released ``model.py:23-62``, 512 -> 4096 -> bits, tanh); the fork's hash MLPs
    without the input normalisation and the tanh (``tanh=False, normalize_input=False``)."""

    def __init__(self, in_features: int, hidden: int, bits: int, dropout: float, tanh: bool = True,
                 normalize_input: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, bits)
        self.tanh, self.normalize_input = tanh, normalize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_input:
            x = l2_normalize(x)
        h = self.fc2(self.drop(torch.relu(self.fc1(x))))
        return l2_normalize(torch.tanh(h) if self.tanh else h)


def input_projection(width: int, target: int) -> nn.Module:
    """Identity when the width already matches (CLIP 512), else a learned Linear(width, target) (documented)."""
    return nn.Identity() if width == target else nn.Linear(width, target)


def register_fill(owner: nn.Module, widths: Mapping[str, int]) -> None:
    """Buffers ``fill_<m>`` = 0 of width ``widths[m]`` on ``owner`` (zeros until ``fit_fill``)."""
    for m, width in widths.items():
        owner.register_buffer(f"fill_{m}", torch.zeros(int(width)))


def fit_fill(owner: nn.Module, inputs: Mapping[str, object], rows: int | None = None) -> None:
    """``fill_<m>`` = the mean training feature of modality m over the first ``rows`` rows (the rows trained on)."""
    for m in ("image", "text"):
        x = torch.as_tensor(inputs[m][:rows]).float()
        getattr(owner, f"fill_{m}").copy_(x.reshape(x.shape[0], -1).mean(0))


def with_fill(owner: nn.Module, modality: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, text) inputs for a uni-modal query ``x`` of ``modality``: the other modality is the stored fill."""
    if modality not in ("image", "text"):
        raise ValueError(f"{type(owner).__name__}.encode: unknown modality '{modality}' (image | text)")
    other = "text" if modality == "image" else "image"
    fill = getattr(owner, f"fill_{other}").to(x.dtype).expand(x.shape[0], -1)
    return (x, fill) if modality == "image" else (fill, x)
