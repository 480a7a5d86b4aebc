"""HashNet's weighted pairwise (maximum-likelihood) loss. SUPERVISED: the pair similarity comes from labels.

Z. Cao, M. Long, J. Wang, P. S. Yu. "HashNet: Deep Learning to Hash by Continuation", ICCV 2017, Eq. (4)-(5):

    L = Σ_{s_ij ∈ S} w_ij ( log(1 + exp(α⟨h_i, h_j⟩)) − α s_ij ⟨h_i, h_j⟩ ),
    w_ij = c_ij · |S|/|S1|  if s_ij = 1,      w_ij = c_ij · |S|/|S0|  if s_ij = 0,

with S1 the similar pairs, S0 the dissimilar pairs, S = S1 ∪ S0 and c_ij = 1 for single-label data (for multi-label
data HashNet sets c_ij to the fraction of shared labels; ``continuous=True``). We average over the pairs (HashNet's
code sums then divides by the number of pairs). α is the sigmoid's scale (``alpha``).

This loss needs labels: a method using it must set ``supervised = True`` (methods/base.py), otherwise the engine
never hands it labels. No method uses it; only tests/test_contrastive.py calls it. It is HashNet's original,
supervised form of the S/S1, S/S0 class-balance weights that the balanced contrastive loss applies to its N
diagonal (positive) pairs; losses/contrastive.py computes those weights itself (``balance_weights``) and does not
import this file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_similarity(labels_a: torch.Tensor, labels_b: torch.Tensor) -> torch.Tensor:
    """s_ij = 1 when items i and j share at least one label, else 0 (multi-hot labels)."""
    return ((labels_a.float() @ labels_b.float().t()) > 0).float()


def label_overlap(labels_a: torch.Tensor, labels_b: torch.Tensor) -> torch.Tensor:
    """HashNet's continuous c_ij for multi-label data: shared labels / labels in the union (Jaccard)."""
    la, lb = labels_a.float(), labels_b.float()
    shared = la @ lb.t()
    union = la.sum(1, keepdim=True) + lb.sum(1, keepdim=True).t() - shared
    return shared / union.clamp_min(1.0)


def weighted_pairwise_loss(h_a: torch.Tensor, h_b: torch.Tensor, s: torch.Tensor, alpha: float = 1.0,
                           c: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of HashNet's weighted negative log-likelihood over all (i, j) pairs of ``h_a`` × ``h_b``.

    ``s`` is the (Na, Nb) 0/1 similarity, ``c`` optional continuous weights c_ij (default 1).
    """
    if h_a.ndim != 2 or h_b.ndim != 2 or h_a.shape[1] != h_b.shape[1]:
        raise ValueError(f"weighted_pairwise_loss: expected (Na, d) and (Nb, d), got {tuple(h_a.shape)}, "
                         f"{tuple(h_b.shape)}")
    if s.shape != (h_a.shape[0], h_b.shape[0]):
        raise ValueError(f"weighted_pairwise_loss: similarity has shape {tuple(s.shape)}, expected "
                         f"({h_a.shape[0]}, {h_b.shape[0]})")
    s = s.to(h_a.dtype)
    total = s.numel()
    n_pos = s.sum()
    n_neg = total - n_pos
    # |S|/|S1| and |S|/|S0|; a batch without positives (or negatives) simply has no such pairs to weight
    w_pos = total / n_pos.clamp_min(1.0)
    w_neg = total / n_neg.clamp_min(1.0)
    w = torch.where(s > 0, w_pos, w_neg)
    if c is not None:
        w = w * c
    ip = alpha * (h_a @ h_b.t())
    nll = F.softplus(ip) - s * ip  # log(1 + exp(x)) - s x, stable
    return (w * nll).mean()
