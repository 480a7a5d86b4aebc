"""Batch similarity matrices built from (frozen) input features, used as training targets by unsupervised methods.

- :func:`cosine_similarity` — plain cosine between rows (one or several modalities, weighted).
- :func:`aggregated_similarity` — AGCH's aggregation of a cosine (orientation) and a Euclidean (difference) metric,
  P.-F. Zhang, Y. Li, Z. Huang, X.-S. Xu, "Aggregation-Based Graph Convolutional Hashing for Unsupervised Cross-Modal
  Retrieval", IEEE TMM 24:466-479, 2022 (Sec. III-C "Similarity Construction", Eqs. 8-12; checked against the
  published text).

Neither function has parameters or gradients of its own: the target is computed from the inputs and then treated
as a constant (callers pass features under ``torch.no_grad()`` or detach the result).
"""

from __future__ import annotations

from typing import Literal

import torch

from bitrieve.parts.distances import euclidean_distances, inner_products
from bitrieve.parts.hashing import l2_normalize

GammaMode = Literal["features", "similarity"]
Metric = Literal["aggregated", "cosine", "euclidean", "cosine_text_euclidean_image"]
DistanceForm = Literal["norm", "sqrt_norm"]


def _check_pair(image_feats: torch.Tensor, text_feats: torch.Tensor) -> None:
    if image_feats.ndim != 2 or text_feats.ndim != 2:
        raise ValueError(f"similarity: expected 2-d (N, d) feature matrices, got image {tuple(image_feats.shape)} "
                         f"and text {tuple(text_feats.shape)}")
    if image_feats.shape[0] != text_feats.shape[0]:
        raise ValueError(f"similarity: image has {image_feats.shape[0]} rows, text has {text_feats.shape[0]}; "
                         "a batch must hold paired rows")


def cosine_similarity(*feats: torch.Tensor, weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Cosine similarity (N, N) of the rows of the concatenation of the L2-normalised, weighted ``feats``.

    With one input this is plain cosine similarity; with several, each block is L2-normalised, scaled by its weight
    and the concatenation is re-normalised, so the result is Σ_m w_m² cos_m / Σ_m w_m².
    """
    if not feats:
        raise ValueError("cosine_similarity: give at least one (N, d) feature matrix")
    weights = weights if weights is not None else (1.0,) * len(feats)
    if len(weights) != len(feats):
        raise ValueError(f"cosine_similarity: {len(feats)} feature matrices but {len(weights)} weights")
    z = torch.cat([w * l2_normalize(f.reshape(f.shape[0], -1).float()) for f, w in zip(feats, weights)], dim=1)
    return inner_products(l2_normalize(z))


def aggregated_similarity(
    image_feats: torch.Tensor,
    text_feats: torch.Tensor,
    gamma_v: float = 1.0,
    gamma_t: float = 1.0,
    rho: float = 4.0,
    *,
    gamma_mode: GammaMode = "features",
    renormalize: bool = False,
    metric: Metric = "aggregated",
    distance_form: DistanceForm = "norm",
    mix: float = 0.5,
    rescale: bool = True,
    return_parts: bool = False,
):
    """AGCH's aggregated similarity S (N, N) of a mini-batch (Zhang et al., TMM 2022, Sec. III-C, Eqs. 8-12).

    Paper steps (the defaults):
      1. Eq. 8: Z̃_i = [γ_v Z̃ᵛ_i, γ_t Z̃ᵗ_i], each modality L2-normalised first (no re-normalisation after the γ
         weighting, so C_ii = γ_v² + γ_t²: 1.64 with Wiki's γ = (1, 0.8));
      2. Eq. 9: C_ij = Z̃_iᵀ Z̃_j (Eq. 10 then calls it Σ_k γ_k cos_k, which would need γ, not γ², as weights - the
         paper's two equations disagree; Eq. 9 is what is computed);
      3. Eq. 12: D_ij = exp(−‖Z̃_i − Z̃_j‖₂ / ρ) (``distance_form="norm"``, default). The printed Eq. 12 puts a square
         root over the norm alone, exp(−√‖Z̃_i − Z̃_j‖₂ / ρ) (the radical's bar ends where "/ρ" starts on p. 470), but
         the paper's worked example right below (C = 0.95, D = 0.92, S = 0.874 at ρ = 4) fits the plain norm: two
         unit vectors with cosine 0.95 are √0.1 = 0.316 apart, exp(−0.316/4) = 0.924, while the printed form gives
         exp(−√0.316/4) = 0.869 (and a root over the whole fraction, exp(−√(0.316/4)), 0.755).
         ``distance_form="sqrt_norm"`` computes the printed form;
      4. Eq. 11: S = C ⊙ D (Hadamard product);
      5. Sec. III-C, last sentence: S ← 2S − 1.

    Ambiguities, as switches:
      ``gamma_mode``: "features" (paper: γ multiplies the features, so C mixes the two cosines with γ²) or
        "similarity" (γ multiplies each modality's cosine / distance directly: C = (γ_v C_v + γ_t C_t)/(γ_v + γ_t)
        when ``renormalize``);
      ``renormalize``: re-L2-normalise Z̃ after weighting (not in the paper; makes C a true cosine in [−1, 1]);
      ``metric``: the paper's ablations (Sec. IV-D.4) — "aggregated" (AGCH), "cosine" (AGCH-1: S = C, Eq. 9),
        "euclidean" (AGCH-2: S = D, Eq. 12), "cosine_text_euclidean_image" (AGCH-3: S = γ C_text + (1 − γ) D_image,
        each on its own modality, γ = ``mix``; the paper does not give AGCH-3's γ);
      ``rescale``: apply step 5 (S ← 2S − 1).

    Returns S, or ``(S, parts)`` with ``parts = {"C": C, "D": D, "S_raw": S before step 5}`` when ``return_parts``.
    """
    _check_pair(image_feats, text_feats)
    if rho <= 0:
        raise ValueError(f"aggregated_similarity: rho must be > 0, got {rho}")
    if distance_form not in ("norm", "sqrt_norm"):
        raise ValueError(f"aggregated_similarity: unknown distance_form '{distance_form}' (norm | sqrt_norm)")
    xv = l2_normalize(image_feats.reshape(image_feats.shape[0], -1).float())
    xt = l2_normalize(text_feats.reshape(text_feats.shape[0], -1).float())

    def dist(z: torch.Tensor) -> torch.Tensor:
        d = euclidean_distances(z)
        return d.sqrt() if distance_form == "sqrt_norm" else d

    if metric == "cosine_text_euclidean_image":
        c = inner_products(xt)
        d = torch.exp(-dist(xv) / rho)
    elif gamma_mode == "features":
        z = torch.cat([gamma_v * xv, gamma_t * xt], dim=1)
        if renormalize:
            z = l2_normalize(z)
        c = inner_products(z)
        d = torch.exp(-dist(z) / rho)
    elif gamma_mode == "similarity":
        norm = (gamma_v + gamma_t) if renormalize else 1.0
        c = (gamma_v * inner_products(xv) + gamma_t * inner_products(xt)) / norm
        d = torch.exp(-(gamma_v * dist(xv) + gamma_t * dist(xt)) / norm / rho)
    else:
        raise ValueError(f"aggregated_similarity: unknown gamma_mode '{gamma_mode}' (features | similarity)")
    if metric == "aggregated":
        s_raw = c * d
    elif metric == "cosine_text_euclidean_image":
        s_raw = mix * c + (1.0 - mix) * d
    elif metric == "cosine":
        s_raw = c
    elif metric == "euclidean":
        s_raw = d
    else:
        raise ValueError(f"aggregated_similarity: unknown metric '{metric}' "
                         "(aggregated | cosine | euclidean | cosine_text_euclidean_image)")
    s = 2.0 * s_raw - 1.0 if rescale else s_raw
    if return_parts:
        return s, {"C": c, "D": d, "S_raw": s_raw}
    return s
