"""Similarity-preserving (reconstruction) and code-alignment losses.

Each function computes per-element values (so every normalisation choice is visible) and takes a ``reduction``
(``losses/reducers.py: reduce``): "none" (per-element tensor), "sum" (the Frobenius-norm form papers write, ‖·‖²_F),
"mean" (what most PyTorch code does with ``F.mse_loss``: each term over its own element count) or "pairs" (the sum
divided by m², m = the number of rows of the batch: one common divisor for every term of an objective that mixes
pair sums (m² entries) with per-item sums (m·c entries), so the relative weights of the printed objective are kept -
AGCH, Eq. 16). The choice changes the loss scale, and "mean" also changes the terms' relative weights by c/m; it is a
real hyper-parameter, so methods expose it.

- :func:`similarity_reconstruction`: ‖S − s·ĉos(A, B)‖² with ĉos the inner product of L2-normalised codes
  (DJSRH, Su et al. ICCV 2019, Eq. 7-8; AGCH, Zhang et al. TMM 2022, Sec. III-D, L1/L2/L3).
- :func:`code_alignment`: ‖A − B‖² row by row (codes of the same item from two branches should agree).
"""

from __future__ import annotations

import torch

from bitrieve.losses.reducers import Reduction, reduce
from bitrieve.parts.distances import cosine_similarities, inner_products
from bitrieve.parts.hashing import l2_normalize

def code_inner_products(a: torch.Tensor, b: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """(N, M) inner products of the rows of ``a`` and ``b`` (``b = a`` if None), L2-normalised first if ``normalize``
    (then entries are cosines in [−1, 1])."""
    # b = a is passed as a second operand (normalised separately): the backward pass then sums the two paths in the
    # order the stored DJSRH/JDSH/AGCH runs were trained with, so their training stays bit-identical
    b = a if b is None else b
    return cosine_similarities(a, b) if normalize else inner_products(a, b)


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
