"""Quantization regularisers that pull continuous hash outputs towards {-1, +1}.

Each function returns a scalar with the reduction its paper (and official code) uses, named at the return
(``losses/reducers.py``) and stated in the docstring, so a method composes them without guessing a normalisation.
"""

from __future__ import annotations

import torch

from bitrieve.losses.reducers import mean, mean_of_row_sums


def _check_2d(h: torch.Tensor, name: str) -> None:
    if h.ndim != 2:
        raise ValueError(f"{name}: expected codes of shape (N, bits), got {tuple(h.shape)}")


def greedy_cubic_penalty(h: torch.Tensor) -> torch.Tensor:
    """GreedyHash's penalty mean(| |h| - 1 |^3) over all N x bits entries.

    Su et al., "Greedy Hash", NeurIPS 2018, Sec. 3: the paper writes it as ||H - sign(H)||_p^p with p = 3; the
    official code (``cifar1.py``) computes ``mean(|(|h| - 1)^3|)``, which is the same quantity averaged over the
    batch and the bits (|h - sign(h)| = ||h| - 1| for h != 0). We follow the code's mean.
    """
    _check_2d(h, "greedy_cubic_penalty")
    return mean((h.abs() - 1.0).abs().pow(3))


def dsh_abs_regularizer(b: torch.Tensor) -> torch.Tensor:
    """DSH's binary-like regulariser sum_i || |b_i| - 1 ||_1 / n.

    Liu et al., "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016, Sec. 3.3 (relaxation): the L1 distance of |b|
    to the all-ones vector, summed over the bits. The official Caffe ``HashingLossLayer`` sums it over the batch and
    divides by the batch size n (``reg / num``), i.e. a per-sample sum over bits averaged over samples.
    """
    _check_2d(b, "dsh_abs_regularizer")
    return mean_of_row_sums((b.abs() - 1.0).abs())
