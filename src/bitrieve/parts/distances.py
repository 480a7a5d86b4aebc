"""Pairwise similarities and distances between the rows of two batches, and label similarity.

The one place where the losses (``bitrieve.losses``) and the similarity targets (``parts/similarity.py``,
``parts/neighbourhood.py``) get an inner product, a cosine, a Euclidean distance or "shares a label" from. Each
function takes (N, d) and optionally (M, d) (``b=None``: the rows of ``a`` against themselves) and returns (N, M).

- :func:`inner_products` - ⟨a_i, b_j⟩ (cosine when the rows are already unit length, as VSE++'s embeddings).
- :func:`cosine_similarities` - ⟨â_i, b̂_j⟩ with â = a / ‖a‖₂ (:func:`bitrieve.parts.hashing.l2_normalize`). Not to be
  confused with ``parts/similarity.py: cosine_similarity``, the (weighted, multi-modal) training target built from
  these pieces.
- :func:`squared_euclidean` - ‖a_i − b_j‖² from the differences: exact (0 for equal rows) and smooth, but it holds an
  (N, M, d) tensor, so it is meant for codes of a mini-batch (DSH).
- :func:`euclidean_distances` - ‖z_i − z_j‖ from the Gram matrix, (N, N) memory for wide input features (AGCH);
  the diagonal is set to exactly 0 (the expansion leaves rounding there, as ``torch.cdist``'s matmul path does).
- :func:`label_similarity` - True where two multi-hot label rows share at least one label (the relevance of
  multi-label retrieval; DSH's official layer: dot product of the label rows > 0).
"""

from __future__ import annotations

import torch

from bitrieve.parts.hashing import l2_normalize


def _check_rows(a: torch.Tensor, b: torch.Tensor, who: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{who}: expected (N, d) and (M, d) matrices, got {tuple(a.shape)} and {tuple(b.shape)}")


def inner_products(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) inner products ⟨a_i, b_j⟩."""
    b = a if b is None else b
    _check_rows(a, b, "inner_products")
    return a @ b.T


def cosine_similarities(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) cosines ⟨â_i, b̂_j⟩ of the L2-normalised rows (a zero row gives 0, not NaN)."""
    a_hat = l2_normalize(a)
    return inner_products(a_hat, None if b is None else l2_normalize(b))


def squared_euclidean(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) squared Euclidean distances from the differences (exact; (N, M, d) memory; differentiable, no sqrt)."""
    b = a if b is None else b
    _check_rows(a, b, "squared_euclidean")
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


def euclidean_distances(z: torch.Tensor) -> torch.Tensor:
    """(N, N) Euclidean distances between the rows of ``z`` via ‖z_i‖² + ‖z_j‖² − 2⟨z_i, z_j⟩ (clamped at 0), with an
    exact-zero diagonal."""
    _check_rows(z, z, "euclidean_distances")
    sq = (z * z).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * inner_products(z)).clamp_min(0.0)
    d2 = d2 * (1.0 - torch.eye(z.shape[0], dtype=z.dtype, device=z.device))
    return d2.sqrt()


def label_similarity(labels_a: torch.Tensor, labels_b: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) bool: True where row i of ``labels_a`` and row j of ``labels_b`` (multi-hot (·, C)) share a label."""
    labels_b = labels_a if labels_b is None else labels_b
    if labels_a.ndim != 2 or labels_b.ndim != 2 or labels_a.shape[1] != labels_b.shape[1]:
        raise ValueError(f"label_similarity: labels must be multi-hot (N, C) and (M, C), got "
                         f"{tuple(labels_a.shape)} and {tuple(labels_b.shape)}")
    return (labels_a.float() @ labels_b.float().T) > 0
