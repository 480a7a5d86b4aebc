"""Hash layers: continuous relaxations and the sign with a straight-through gradient (training only; test-time codes
are signed by ``bitrieve.codes.sign``, the same rule: 0 -> +1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _SignStraightThrough(torch.autograd.Function):
    """Forward sign(h) (0 maps to +1, so every output is exactly ±1); backward passes the gradient unchanged.

    GreedyHash (Su et al., NeurIPS 2018), Eq. (5)-(7): the greedy principle updates h with the gradient of sign(h)
    treated as identity.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.where(h >= 0, torch.ones_like(h), -torch.ones_like(h))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def sign_ste(h: torch.Tensor) -> torch.Tensor:
    """sign(h) in {-1, +1} with identity gradient (straight-through)."""
    return _SignStraightThrough.apply(h)


class TanhHash(nn.Module):
    """Linear(in, bits) -> tanh: the usual continuous relaxation of a hash layer."""

    def __init__(self, in_features: int, bits: int):
        super().__init__()
        self.fc = nn.Linear(in_features, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    return F.normalize(x, p=2, dim=dim, eps=eps)
