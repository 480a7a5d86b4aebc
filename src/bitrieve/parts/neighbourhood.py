"""Similarity targets of the unsupervised deep cross-modal hashing baselines DJSRH, JDSH and DGCPN.

Each builder maps frozen features (image, text) of n items to an n×n target S that the hash codes' cosine
similarities are regressed onto. No parameters, no gradients (callers pass detached features).

- :func:`djsrh_joint_similarity` - DJSRH (Su, Zhong, Zhang, ICCV 2019, Sec. 3.2, Eq. 1-3): intra-modal cosine
  S_I, S_T rescaled to [-1, 1] (2·cos - 1), fused S̃ = β S_I + (1-β) S_T, then the neighbourhood-augmented
  S = (1-η) S̃ + η S̃ S̃ᵀ / n, scaled by μ.
- :func:`jdsh_joint_similarity` - JDSH (Liu, Qian, Guan, Zhan, Ying, SIGIR 2020, Sec. 3.2-3.3): joint-modal
  S̃ = α S_I + β S_T + λ (S_H + S_Hᵀ)/2 with S_H = norm(S_I) norm(S_T)ᵀ, then the Distribution-based Similarity
  Decision and Weighting (DSDW): values below ``left = loc_l - a·scale_l`` (confident dissimilar) become
  (1 + L1·e^{-(s - min)}) s, values above ``right = loc_r + b·scale_r`` (confident similar) become
  (1 + L2·e^{s - max}) s; finally × μ. Thresholds are those of the released configs (fitted per dataset).
- :func:`dgcpn_similarity` - DGCPN (Yu, Zhou, Zhan, Tao, AAAI 2021, Sec. 3.2; released ``train_div.py``
  ``cal_similarity``): the coexistent similarity S_pair = a1 S_T + (1-a1) S_I and the graph-neighbour coherence:
  every row of S_pair keeps its largest entries as a row-normalised neighbour distribution P (see
  :func:`released_neighbour_distribution` for exactly which); coherence = P Pᵀ · scale (two items are close when
  their neighbourhoods overlap); S = 2((1-a2) S_pair + a2 · coherence) - 1. Computed once over the training set.
"""

from __future__ import annotations

import torch

from bitrieve.parts.distances import cosine_similarities
from bitrieve.parts.similarity import cosine_similarity


def _rescaled_cosine(x: torch.Tensor) -> torch.Tensor:
    """2·cos - 1 (the [-1, 1] rescaling used by DJSRH/JDSH's released code)."""
    return 2.0 * cosine_similarity(x) - 1.0


def _check(image: torch.Tensor, text: torch.Tensor, who: str) -> None:
    if image.ndim != 2 or text.ndim != 2 or image.shape[0] != text.shape[0]:
        raise ValueError(f"{who}: expected paired (n, d) image and text features, got {tuple(image.shape)} and "
                         f"{tuple(text.shape)}")


def djsrh_joint_similarity(image: torch.Tensor, text: torch.Tensor, beta: float, eta: float, mu: float
                           ) -> torch.Tensor:
    """DJSRH's μ·[(1-η) S̃ + η S̃ S̃ᵀ/n], S̃ = β S_I + (1-β) S_T (released code divides by the batch size n)."""
    _check(image, text, "djsrh_joint_similarity")
    s_tilde = beta * _rescaled_cosine(image) + (1.0 - beta) * _rescaled_cosine(text)
    n = s_tilde.shape[0]
    return mu * ((1.0 - eta) * s_tilde + eta * (s_tilde @ s_tilde.t()) / n)


def jdsh_joint_similarity(image: torch.Tensor, text: torch.Tensor, *, alpha: float, beta: float, lamb: float,
                          mu: float, left: float, right: float, l1: float, l2: float, s_min: float, s_max: float
                          ) -> torch.Tensor:
    """JDSH's DSDW-weighted joint-modal similarity (module docstring); ``left``/``right`` already computed."""
    _check(image, text, "jdsh_joint_similarity")
    s_i, s_t = _rescaled_cosine(image), _rescaled_cosine(text)
    s_h = cosine_similarities(s_i, s_t)
    s = alpha * s_i + beta * s_t + lamb * (s_h + s_h.t()) / 2.0
    low, high = s < left, s > right
    s = torch.where(low, (1.0 + l1 * torch.exp(-(s - s_min))) * s, s)
    s = torch.where(high, (1.0 + l2 * torch.exp(s - s_max)) * s, s)
    return mu * s


def released_neighbour_distribution(sim: torch.Tensor, knn_number: int) -> torch.Tensor:
    """DGCPN's neighbour distribution as the released code builds it (Atmegal/DGCPN train_div.py:88-96).

    Each row is sorted ascending; its ``knn_number`` smallest entries and its largest entry are set to 0 and the row
    is divided by its sum. ``knn_number`` is the released ``--knn_number`` (the number of entries *dropped*), so
    every row keeps ``n - knn_number - 1`` neighbours; the zeroed maximum is the item itself (cosine 1) unless an
    exact duplicate ties with it. Ties are ordered by column index (a stable sort; the released ``torch.sort`` on the
    GPU leaves their order unspecified). Entries must be non-negative for a distribution (cosines of non-negative
    features such as CNN activations, bag-of-words, LDA or SIFT histograms).
    """
    n = sim.shape[0]
    if not 0 <= knn_number <= n - 2:
        raise ValueError(f"released_neighbour_distribution: knn_number must be in [0, n-2] = [0, {n - 2}] so that at "
                         f"least one neighbour is kept, got {knn_number}")
    order = torch.sort(sim, dim=1, stable=True).indices
    dropped = torch.cat([order[:, :knn_number], order[:, -1:]], dim=1)
    p = sim.scatter(1, dropped, 0.0)
    return p / p.sum(1, keepdim=True).clamp_min(1e-12)


def dgcpn_similarity(image: torch.Tensor, text: torch.Tensor, *, a1: float, a2: float, knn_number: int,
                     scale: float) -> torch.Tensor:
    """DGCPN's target 2((1-a2) S_pair + a2 · scale · P Pᵀ) - 1 (module docstring; train_div.py:78-103)."""
    _check(image, text, "dgcpn_similarity")
    s_pair = a1 * cosine_similarity(text) + (1.0 - a1) * cosine_similarity(image)
    p = released_neighbour_distribution(s_pair, knn_number)
    coherence = scale * (p @ p.t())
    return 2.0 * ((1.0 - a2) * s_pair + a2 * coherence) - 1.0
