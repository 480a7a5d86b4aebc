"""Input standardisation: z-score each input dimension with training-set statistics (feature mode only).

x̂ = (x − μ) / σ, μ the training mean and σ the training standard deviation of each dimension (Bessel-corrected,
ddof = 1, as ``torch.std``), σ clamped below at 1e-6 so a constant dimension maps to 0 instead of dividing by zero.
Not in any of the papers: their networks saw CNN activations or raw counts; bitrieve's feature-mode inputs (e.g.
Wiki's unit-scale SIFT / LDA vectors) can be far smaller, on which a 4,096-wide MLP starts with near-constant outputs.

The statistics live in buffers ``<modality>_mean`` / ``<modality>_std`` registered directly on the method (the
checkpoint keys every stored run has). A width of 0 means "this modality is not standardised" (AGCH's
``standardize_inputs``); the DJSRH family (``input_norm``) registers full-width buffers that stay the identity
(μ = 0, σ = 1, exact in float) until ``fit_standardization`` fills them.

Two accumulation precisions, each kept as the method had it (so a retrain reproduces its numbers): AGCH sums in
float64 and stores float32; the DJSRH family computes in float32.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

STD_FLOOR = 1e-6  # σ below this is clamped (a constant dimension)


def register_standardization(owner: nn.Module, widths: Mapping[str, int]) -> None:
    """Buffers ``<m>_mean`` = 0 and ``<m>_std`` = 1 of width ``widths[m]`` on ``owner`` (0 = not standardised)."""
    for m, width in widths.items():
        owner.register_buffer(f"{m}_mean", torch.zeros(int(width)))
        owner.register_buffer(f"{m}_std", torch.ones(int(width)))


def feature_statistics(x, accumulate: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, max(σ, 1e-6)) per column of ``x`` (N, ...) flattened to (N, d), computed in ``accumulate``, as float32."""
    x = torch.as_tensor(x)
    x = x.reshape(x.shape[0], -1).to(accumulate)
    return x.mean(0).float(), x.std(0).clamp_min(STD_FLOOR).float()


def fit_standardization(owner: nn.Module, inputs: Mapping[str, object], modalities: Iterable[str],
                        accumulate: torch.dtype = torch.float32) -> None:
    """Fill ``owner``'s buffers of ``modalities`` with the statistics of the training inputs ``inputs[m]``."""
    for m in modalities:
        if len(inputs[m]) < 2:  # the Bessel-corrected std of one row is undefined (NaN)
            from bitrieve.errors import TooFewItems

            raise TooFewItems(f"input standardisation ('{m}'): needs at least 2 training items, got {len(inputs[m])}")
        mean, std = feature_statistics(inputs[m], accumulate)
        getattr(owner, f"{m}_mean").copy_(mean)
        getattr(owner, f"{m}_std").copy_(std)


def standardize(owner: nn.Module, modality: str, x: torch.Tensor) -> torch.Tensor:
    """x flattened to (N, d) float, z-scored with ``owner``'s buffers; unchanged where the buffers have width 0."""
    x = x.reshape(x.shape[0], -1).float()
    mean = getattr(owner, f"{modality}_mean", None)
    if mean is None:
        raise ValueError(f"{type(owner).__name__}: unknown modality '{modality}' (no standardisation buffers)")
    if mean.numel() == 0:
        return x
    return (x - mean) / getattr(owner, f"{modality}_std")
