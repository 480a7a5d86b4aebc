"""DSH's online pairwise contrastive loss (Liu et al., "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016).

Every pair i < j of a mini-batch is used ("online pair generation", Sec. 3.2); a pair is similar when the two
samples share at least one label (the official Caffe ``HashingLossLayer``: dot product of the label rows > 0, which is
"same class" for one-hot labels).

Constants (checked against the paper and the official Caffe layer, lhmRyan/deep-supervised-hashing-DSH,
``src/caffe/layers/hashing_loss_layer.cpp``):

- Paper, Sec. 3 (relaxed loss): L = 1/2 * s * ||b_i - b_j||^2 + 1/2 * (1 - s) * max(m - ||b_i - b_j||^2, 0) + regulariser,
  with m = 2k (k = bits; the CIFAR-10 prototxt sets ``bi_margin: 24`` for 12 bits).
- Caffe: the *reported* loss value sums ||.||^2 / max(m - ||.||^2, 0) without the 1/2, divided by n(n - 1); the
  *gradient* it back-propagates is (b_i - b_j) / (n(n - 1)) -- the gradient of the paper's 1/2 form. What trains the
  network is therefore the paper's relaxed loss with the 1/2, normalised by n(n - 1).

We follow the trained objective: ``pair_weight = 0.5`` by default (the paper's 1/2 and the Caffe gradient).
``pair_weight = 1.0`` reproduces the Caffe *reported* value (and doubles the pair gradient relative to the
regulariser). The sum over the n(n - 1)/2 pairs is divided by n(n - 1), as in Caffe (``alpha = 1 / (num*(num-1))``):
``losses/reducers.py: per_ordered_pair``.
"""

from __future__ import annotations

import torch

from bitrieve.losses.reducers import per_ordered_pair
from bitrieve.parts.distances import label_similarity, squared_euclidean


def dsh_pair_loss(
    b: torch.Tensor, labels: torch.Tensor, margin: float, pair_weight: float = 0.5
) -> dict[str, torch.Tensor]:
    """DSH pair terms of one mini-batch.

    Args:
        b: (n, bits) real-valued network outputs (no sign; DSH relaxes the codes).
        labels: (n, C) multi-hot labels; a pair is similar when it shares a label.
        margin: m; the paper uses 2 * bits.
        pair_weight: the paper's 1/2 (default); see the module docstring.

    Returns a dict: ``"pairs"`` = weighted sum over pairs i < j of the similar/dissimilar terms / (n(n - 1)),
    and the two parts ``"similar"`` and ``"dissimilar"`` (same normalisation), and ``"n_similar"`` (count, no grad).
    """
    if b.ndim != 2:
        raise ValueError(f"dsh_pair_loss: codes must have shape (n, bits), got {tuple(b.shape)}")
    n = b.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"dsh_pair_loss: {n} code rows but {labels.shape[0]} label rows")
    if n < 2:
        raise ValueError("dsh_pair_loss: a mini-batch needs at least 2 samples to form a pair")
    sim = label_similarity(labels)
    d2 = squared_euclidean(b)  # exact differences: n is a mini-batch, so the (n, n, bits) tensor is small
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=b.device), diagonal=1)  # pairs i < j
    sim_u = sim & upper
    dis_u = (~sim) & upper
    # Caffe's alpha = 1 / (n(n - 1)) over the n(n - 1)/2 pairs i < j
    similar = pair_weight * per_ordered_pair(d2 * sim_u)
    dissimilar = pair_weight * per_ordered_pair(torch.clamp(margin - d2, min=0.0) * dis_u)
    return {
        "pairs": similar + dissimilar,
        "similar": similar,
        "dissimilar": dissimilar,
        "n_similar": sim_u.sum().detach().float(),
    }
