"""VSE++ hinge-based triplet ranking loss (Faghri et al., "VSE++: Improving Visual-Semantic Embeddings with Hard
Negatives", BMVC 2018).

Scores s(i, c) are cosine similarities of L2-normalised embeddings; row k of the batch is the positive pair
(image_k, caption_k). Sec. 3, SH (sum of hinges):
    sum_c' [a + s(i, c') - s(i, c)]_+  +  sum_i' [a + s(i', c) - s(i, c)]_+
Sec. 3, MH (max of hinges, "VSE++"): only the hardest negative of each row (caption side) and each column (image
side) counts. Both are summed over the batch, not averaged, as in the official ``ContrastiveLoss``
(``losses/reducers.py: total``).
"""

from __future__ import annotations

import torch

from bitrieve.losses.reducers import total
from bitrieve.parts.distances import inner_products


def hardest_negatives(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the hardest negatives of a square score matrix (positives on the diagonal).

    Returns ``(caption_idx, image_idx)``: for each image (row) the column of its highest-scoring non-matching
    caption, and for each caption (column) the row of its highest-scoring non-matching image.
    """
    _check_square(scores)
    masked = scores.masked_fill(torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device), float("-inf"))
    return masked.argmax(dim=1), masked.argmax(dim=0)


def vse_hinge_loss(
    im: torch.Tensor, cap: torch.Tensor, margin: float = 0.2, max_violation: bool = True
) -> dict[str, torch.Tensor]:
    """Bidirectional hinge triplet loss on cosine scores ``im @ cap.T`` (both inputs already L2-normalised).

    Returns ``{"loss", "i2t", "t2i"}``: ``i2t`` sums the hinges over negative captions of each image, ``t2i`` over
    negative images of each caption; with ``max_violation`` each keeps only its hardest negative (MH).
    """
    if im.ndim != 2 or cap.shape != im.shape:
        raise ValueError(f"vse_hinge_loss: image and caption embeddings must both be (n, d); got "
                         f"{tuple(im.shape)} and {tuple(cap.shape)}")
    if im.shape[0] < 2:
        raise ValueError("vse_hinge_loss: a batch needs at least 2 pairs to have negatives")
    scores = inner_products(im, cap)  # cosines: the embeddings are unit length
    pos = scores.diagonal()
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_cap = (margin + scores - pos.unsqueeze(1)).clamp(min=0).masked_fill(eye, 0.0)  # row i: image i vs captions
    cost_im = (margin + scores - pos.unsqueeze(0)).clamp(min=0).masked_fill(eye, 0.0)  # column j: caption j vs images
    if max_violation:  # MH: the hardest negative of each row / column
        cost_cap, cost_im = cost_cap.max(dim=1).values, cost_im.max(dim=0).values
    i2t, t2i = total(cost_cap), total(cost_im)  # summed over the batch, not averaged (official ContrastiveLoss)
    return {"loss": i2t + t2i, "i2t": i2t, "t2i": t2i}


def _check_square(scores: torch.Tensor) -> None:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"expected a square (n, n) score matrix, got {tuple(scores.shape)}")
