"""Graph convolution on a mini-batch graph (Kipf & Welling, ICLR 2017, Eq. 2), as AGCH uses it.

AGCH (Zhang et al., IEEE TMM 2022, Sec. III-C) runs, per modality, two graph-convolution layers and one fully
connected layer on the 4,096-d encoder features, with the batch similarity S as the graph:
H⁽ˡ⁾ = σ(D̃^{-1/2} Ã D̃^{-1/2} H⁽ˡ⁻¹⁾ W⁽ˡ⁾), Ã built from S, D̃ its degree matrix; ReLU inside, tanh on the last layer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def normalized_adjacency(a: torch.Tensor, self_loops: bool = True, abs_degree: bool = False,
                         eps: float = 1e-12) -> torch.Tensor:
    """D̃^{-1/2} Ã D̃^{-1/2} with Ã = A + I (``self_loops``) and D̃_ii = Σ_j Ã_ij.

    ``abs_degree``: degrees from |Ã| — needed when A has negative entries (e.g. a similarity already mapped to
    [−1, 1] by 2S − 1), where plain row sums can be ≤ 0 and the inverse square root undefined. Without it a
    non-positive degree is an error (naming the row) rather than a silent NaN.
    """
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"normalized_adjacency: expected a square (N, N) matrix, got {tuple(a.shape)}")
    if self_loops:
        a = a + torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    deg = a.abs().sum(1) if abs_degree else a.sum(1)
    if not abs_degree and bool((deg <= 0).any()):
        row = int(torch.nonzero(deg <= 0)[0])
        raise ValueError(f"normalized_adjacency: row {row} has degree {float(deg[row]):.4g} <= 0; the adjacency has "
                         "negative entries — pass abs_degree=True or build it from a non-negative similarity")
    inv_sqrt = deg.clamp_min(eps).rsqrt()
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


class GraphConv(nn.Module):
    """One graph-convolution layer: Â H W (+ b); Â is given already normalised (see :func:`normalized_adjacency`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        if adj.shape != (x.shape[0], x.shape[0]):
            raise ValueError(f"GraphConv: adjacency {tuple(adj.shape)} does not match {x.shape[0]} nodes")
        # Â (H W) rather than (Â H) W: cheaper when out_features < in_features; Â b = b only when rows of Â sum
        # to 1, so the bias is added after the propagation, as in Kipf & Welling's reference code
        h = x @ self.linear.weight.T
        h = adj @ h
        return h + self.linear.bias if self.linear.bias is not None else h


class GCNHash(nn.Module):
    """Graph-conv layers (ReLU) then one FC with tanh: AGCH's per-modality GCN branch (Sec. III-C).

    ``dims``: widths of the graph-conv outputs, e.g. (2048, 2048) for 4096 -> 2048 -> 2048 -> c (the default reading
    of the paper's "two graph-conv layers + one FC, 4096 -> 2048 -> c").
    """

    def __init__(self, in_features: int, dims: Sequence[int], bits: int):
        super().__init__()
        if not dims:
            raise ValueError("GCNHash: give at least one graph-conv width in dims")
        widths = [in_features, *dims]
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.fc = nn.Linear(widths[-1], bits)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = torch.relu(conv(h, adj))
        return torch.tanh(self.fc(h))
