"""Similarity-preserving (reconstruction) and code-alignment losses.

Each function returns per-element values (so every normalisation choice is visible) and takes a ``reduction``:
"none" (per-element tensor), "sum" (the Frobenius-norm form papers write, ‖·‖²_F), "mean" (what most PyTorch code
does with ``F.mse_loss``: each term over its own element count) or "pairs" (the sum divided by m², m = the number
of rows of the batch: one common divisor for every term of an objective that mixes pair sums (m² entries) with
per-item sums (m·c entries), so the relative weights of the printed objective are kept - AGCH, Eq. 16). The choice
changes the loss scale, and "mean" also changes the terms' relative weights by c/m; it is a real hyper-parameter, so
methods expose it.

- :func:`similarity_reconstruction`: ‖S − s·ĉos(A, B)‖² with ĉos the inner product of L2-normalised codes
  (DJSRH, Su et al. ICCV 2019, Eq. 7-8; AGCH, Zhang et al. TMM 2022, Sec. III-D, L1/L2/L3).
- :func:`code_alignment`: ‖A − B‖² row by row (codes of the same item from two branches should agree).
"""

from __future__ import annotations

from typing import Literal

import torch

from bitrieve.parts.hashing import l2_normalize

Reduction = Literal["none", "sum", "mean", "pairs"]


def reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Apply a reduction to per-element loss values (none | sum | mean | pairs).

    ``pairs``: the sum divided by m², m = ``values.shape[0]`` (the batch's rows), whatever the second dimension is
    (m for a similarity matrix, c for codes) - the common divisor that keeps an objective's printed relative weights.
    """
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    if reduction == "pairs":
        return values.sum() / float(values.shape[0]) ** 2
    raise ValueError(f"unknown reduction '{reduction}' (none | sum | mean | pairs)")


def code_inner_products(a: torch.Tensor, b: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """(N, M) inner products of the rows of ``a`` and ``b`` (``b = a`` if None), L2-normalised first if ``normalize``
    (then entries are cosines in [−1, 1])."""
    b = a if b is None else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"code_inner_products: expected (N, c) and (M, c) codes, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if normalize:
        a, b = l2_normalize(a), l2_normalize(b)
    return a @ b.T


def similarity_reconstruction(target: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None = None, *,
                              scale: float = 1.0, normalize: bool = True,
                              reduction: Reduction = "mean") -> torch.Tensor:
    """(S_ij − scale · ⟨â_i, b̂_j⟩)² per pair: reconstruct the target similarity from code inner products.

    ``target``: (N, M) similarity (treated as a constant: detached). ``b`` None: within-set products of ``a``.
    """
    prod = code_inner_products(a, b, normalize=normalize)
    if target.shape != prod.shape:
        raise ValueError(f"similarity_reconstruction: target {tuple(target.shape)} does not match code products "
                         f"{tuple(prod.shape)}")
    return reduce((target.detach() - scale * prod) ** 2, reduction)


def code_alignment(a: torch.Tensor, b: torch.Tensor, *, normalize: bool = True,
                   reduction: Reduction = "mean") -> torch.Tensor:
    """(â_ik − b̂_ik)² per entry: two branches' codes of the same items should agree (both receive gradients).

    With ``normalize`` the rows are L2-normalised first, so the row sum is 2 − 2 cos(a_i, b_i).
    """
    if a.shape != b.shape:
        raise ValueError(f"code_alignment: codes of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if normalize:
        a, b = l2_normalize(a), l2_normalize(b)
    return reduce((a - b) ** 2, reduction)
