"""Bidirectional cross-attention between two per-sample representations (the UCMFH variant's CrossAttention block).

The UCMFH fork tudouPotatoo/UCMFH, branch hashNetVersion (see docs/methods/ucmfh.md): two 8-head attentions with residual connections, dropout 0.1 and
LayerNorm - image attends to text and text attends to image:

    v' = LN_v(v + Dropout(Attn_v(q=v, k=t, v=t))),     t' = LN_t(t + Dropout(Attn_t(q=t, k=v, v=v))).

Like :mod:`bitrieve.parts.transformer`, each sample is its own length-1 sequence by default (so one sample's image
only sees its own text); ``whole_batch_sequence=True`` lets every sample attend to the whole batch instead.
"""

from __future__ import annotations

import torch
from torch import nn


class CrossAttention(nn.Module):
    def __init__(self, dim: int = 512, nhead: int = 8, dropout: float = 0.1):
        super().__init__()
        self.attn_image = nn.MultiheadAttention(dim, nhead, dropout=dropout, batch_first=True)
        self.attn_text = nn.MultiheadAttention(dim, nhead, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm_image = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, image: torch.Tensor, text: torch.Tensor, whole_batch_sequence: bool = False):
        if image.shape != text.shape or image.ndim != 2 or image.shape[1] != self.dim:
            raise ValueError(f"CrossAttention: expected two (N, {self.dim}) inputs, got {tuple(image.shape)} and "
                             f"{tuple(text.shape)}")
        v = image.unsqueeze(0) if whole_batch_sequence else image.unsqueeze(1)
        t = text.unsqueeze(0) if whole_batch_sequence else text.unsqueeze(1)
        v2 = self.norm_image(v + self.drop(self.attn_image(v, t, t, need_weights=False)[0]))
        t2 = self.norm_text(t + self.drop(self.attn_text(t, v, v, need_weights=False)[0]))
        dim = 0 if whole_batch_sequence else 1
        return v2.squeeze(dim), t2.squeeze(dim)
