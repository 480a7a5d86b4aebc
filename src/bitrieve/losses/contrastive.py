"""Contrastive losses between paired image/text vectors: SimCLR NT-Xent, cross-modal InfoNCE, and the balanced variant.

Every function takes two (N, d) tensors whose row i forms a positive pair, scores them by cosine similarity
(``parts/distances.py: cosine_similarities``) / τ, and returns the mean over the anchors as the released code does
(``reduction="mean"``, ``losses/reducers.py: mean``) or the per-anchor values (``reduction="none"``).

- :func:`nt_xent` - the loss of UCMFH's released code (``metric.py: ContrastiveLoss``), which is SimCLR's NT-Xent
  (Chen et al., ICML 2020, Eq. 1): the 2N vectors [z_a; z_b] all serve as anchors; for anchor k the positive is its
  partner and the 2N-2 negatives include *same-modality* vectors; mean over the 2N anchors.
- :func:`info_nce` - cross-modal InfoNCE (CLIP-style): N×N matrix s_ij = cos(a_i, b_j)/τ, positives on the diagonal,
  negatives only across modalities; ``symmetric`` averages the a->b and b->a directions.
- :func:`balanced_contrastive` - the UCMFH fork's ``ContrastiveLossBalanced`` (tudouPotatoo/UCMFH, branch
  hashNetVersion; HashNet-style class-balance weights, Cao et al., ICCV 2017, Eq. 4, carried into InfoNCE): with
  S1 = N positives, S0 = N² - N negatives, S = N², w_pos = S/S1 (= N), w_neg = S/S0 (= N/(N-1)):

      loss_i = -w_pos · log( exp(s_ii) / (exp(s_ii) + w_neg · Σ_{j≠i} exp(s_ij)) ),   averaged over i.

  S1 and S0 depend only on N, so this is exactly N × a one-directional cross-modal InfoNCE whose negative sum is
  re-weighted by N/(N-1) (≈ 1.008 at N = 128). Under Adam a constant loss scale barely changes the updates; the real
  differences from :func:`nt_xent` are (i) no same-modality negatives and (ii) one direction only (unless
  ``symmetric``). See docs/methods/ucmfh.md for the measured comparison.

:func:`contrastive` dispatches on a name (``"ntxent" | "infonce" | "balanced"``) so methods expose the choice as one
``loss:`` Params key.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from bitrieve.losses.reducers import Reduction, reduce
from bitrieve.parts.distances import cosine_similarities

ContrastiveKind = Literal["ntxent", "infonce", "balanced"]


def _check_pair(z_a: torch.Tensor, z_b: torch.Tensor, name: str) -> None:
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"{name}: expected two (N, d) tensors of the same shape, got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    if z_a.shape[0] < 2:
        raise ValueError(f"{name}: needs at least 2 pairs per batch (no negatives otherwise), got N={z_a.shape[0]}")


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5,
            reduction: Reduction = "mean") -> torch.Tensor:
    """SimCLR NT-Xent over the 2N vectors [z_a; z_b] (UCMFH official, τ = 0.5); per-anchor values have length 2N."""
    _check_pair(z_a, z_b, "nt_xent")
    n = z_a.shape[0]
    logits = cosine_similarities(torch.cat([z_a, z_b], dim=0)) / temperature
    device = logits.device
    # the anchor itself is excluded from the denominator (SimCLR's 1[k != i])
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(device)
    per_anchor = torch.logsumexp(logits, dim=1) - logits[torch.arange(2 * n, device=device), partner]
    return reduce(per_anchor, reduction)  # mean over the 2N anchors


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, symmetric: bool = True,
             reduction: Reduction = "mean") -> torch.Tensor:
    """Cross-modal InfoNCE: cross-entropy of row i of cos(a, b)/τ against target i (and of the columns if symmetric)."""
    _check_pair(z_a, z_b, "info_nce")
    logits = cosine_similarities(z_a, z_b) / temperature
    target = torch.arange(z_a.shape[0], device=z_a.device)
    per_anchor = F.cross_entropy(logits, target, reduction="none")
    if symmetric:
        per_anchor = torch.cat([per_anchor, F.cross_entropy(logits.t(), target, reduction="none")])
    return reduce(per_anchor, reduction)  # mean over the N (or 2N) anchors


def balance_weights(n: int) -> tuple[float, float]:
    """(w_pos, w_neg) = (S/S1, S/S0) for an N×N pair matrix with the N diagonal pairs positive."""
    if n < 2:
        raise ValueError(f"balance_weights: needs N >= 2, got {n}")
    s1, s0 = n, n * n - n
    s = s1 + s0
    return s / s1, s / s0


def _balanced_rows(logits: torch.Tensor, w_pos: float, w_neg: float) -> torch.Tensor:
    n = logits.shape[0]
    diag = torch.eye(n, dtype=torch.bool, device=logits.device)
    pos = logits.diagonal()
    # log Σ_{j≠i} exp(s_ij) in log space (stable for small τ)
    log_neg = torch.logsumexp(logits.masked_fill(diag, float("-inf")), dim=1)
    log_denominator = torch.logaddexp(pos, math.log(w_neg) + log_neg)
    return w_pos * (log_denominator - pos)


def balanced_contrastive(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, symmetric: bool = False,
                         reduction: Reduction = "mean") -> torch.Tensor:
    """The UCMFH fork's ContrastiveLossBalanced (module docstring). ``symmetric`` appends the b->a rows (mean over 2N)."""
    _check_pair(z_a, z_b, "balanced_contrastive")
    w_pos, w_neg = balance_weights(z_a.shape[0])
    logits = cosine_similarities(z_a, z_b) / temperature
    per_anchor = _balanced_rows(logits, w_pos, w_neg)
    if symmetric:
        per_anchor = torch.cat([per_anchor, _balanced_rows(logits.t(), w_pos, w_neg)])
    return reduce(per_anchor, reduction)  # mean over the N anchors (the fork's .mean()), 2N if symmetric


def contrastive(kind: ContrastiveKind, z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5,
                symmetric: bool = False) -> torch.Tensor:
    """Mean contrastive loss by name. ``symmetric`` is used by "infonce" and "balanced" (NT-Xent is symmetric)."""
    if kind == "ntxent":
        return nt_xent(z_a, z_b, temperature)
    if kind == "infonce":
        return info_nce(z_a, z_b, temperature, symmetric=symmetric)
    if kind == "balanced":
        return balanced_contrastive(z_a, z_b, temperature, symmetric=symmetric)
    raise ValueError(f"unknown contrastive loss {kind!r}; choose 'ntxent', 'infonce' or 'balanced'")
