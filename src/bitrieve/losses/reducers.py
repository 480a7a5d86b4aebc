"""Named reductions of per-element loss values: each name says what the paper (or its official code) divides by.

The reduction is part of a loss's definition: it sets the loss scale and, when an objective adds terms with
different element counts, their relative weights. So every loss calls one of these by name at the line where it
reduces, instead of a bare ``.sum()`` / ``.mean()``.

==========================  ==================  =========================================================================
function                    value               used by
==========================  ==================  =========================================================================
:func:`total`               Σ                   VSE++ hinges summed over the batch (official ``ContrastiveLoss``); the
                                                ‖·‖²_F that printed objectives write (``reduction="sum"``)
:func:`mean`                Σ / count           GreedyHash's cubic penalty (official code's mean); NT-Xent, InfoNCE and
                                                the balanced contrastive loss (mean over anchors); DJSRH/JDSH/DGCPN's
                                                ``F.mse_loss`` form (``reduction="mean"``)
:func:`mean_of_row_sums`    Σ / n               DSH's regulariser (Caffe ``HashingLossLayer``: summed, then ``/ num``)
:func:`per_ordered_pair`    Σ / (n(n − 1))      DSH's pair terms (Caffe ``alpha = 1 / (num * (num - 1))``; the sum runs
                                                over the pairs i < j only, so this is half the mean over those pairs)
:func:`per_squared_batch`   Σ / m²              AGCH Eq. 16 with one common divisor (``reduction="pairs"``): pair sums
                                                (m² entries) and per-item sums (m·c entries) alike, so the printed
                                                relative weights are kept
==========================  ==================  =========================================================================

n and m are the number of rows of ``values`` (the mini-batch size). :func:`reduce` selects one by the names a
method exposes as a ``reduction`` hyper-parameter (``none | sum | mean | pairs``).
"""

from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["none", "sum", "mean", "pairs"]


def total(values: torch.Tensor) -> torch.Tensor:
    """Σ of all entries."""
    return values.sum()


def mean(values: torch.Tensor) -> torch.Tensor:
    """Σ / number of entries."""
    return values.mean()


def mean_of_row_sums(values: torch.Tensor) -> torch.Tensor:
    """Σ / n, n = rows: each sample's sum over its entries (e.g. bits), averaged over the samples."""
    return values.sum() / values.shape[0]


def per_ordered_pair(values: torch.Tensor) -> torch.Tensor:
    """Σ / (n(n − 1)) of an (n, n) pair matrix (DSH, Caffe ``alpha``); n ≥ 2."""
    n = values.shape[0]
    if values.ndim != 2 or values.shape[1] != n or n < 2:
        raise ValueError(f"per_ordered_pair: expected an (n, n) pair matrix with n >= 2, got {tuple(values.shape)}")
    return values.sum() / float(n * (n - 1))


def per_squared_batch(values: torch.Tensor) -> torch.Tensor:
    """Σ / m², m = rows, whatever the second dimension (m for a pair matrix, c for codes): AGCH's ``pairs``."""
    return values.sum() / float(values.shape[0]) ** 2


_BY_NAME = {"sum": total, "mean": mean, "pairs": per_squared_batch}


def reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """``none`` (the per-element tensor), ``sum`` (:func:`total`), ``mean`` (:func:`mean`) or ``pairs``
    (:func:`per_squared_batch`)."""
    if reduction == "none":
        return values
    if reduction not in _BY_NAME:
        raise ValueError(f"unknown reduction '{reduction}' (none | sum | mean | pairs)")
    return _BY_NAME[reduction](values)
