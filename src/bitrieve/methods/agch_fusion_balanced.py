"""A composed method (docs/compose.md): UCMFH's fusion encoder + the balanced contrastive loss + AGCH's similarity.

Not a published method - an example of building one from bitrieve's parts in a few lines:
  * encoder and hash heads: UCMFH's (methods/ucmfh.py: token [image ; text] -> 2-layer transformer -> split ->
    per-modality hash heads), uni-modal encoding with the training-mean fill;
  * contrastive terms: the balanced contrastive loss (losses/contrastive.py) on the embeddings and, × 0.5, on the
    hash outputs - exactly UCMFH's ``loss: balanced``;
  * structure term: AGCH's aggregated similarity S = 2(C ⊙ D) - 1 of the batch's input features
    (parts/similarity.py, Zhang et al., TMM 2022, Sec. III-B) reconstructed by the codes' cosines, as in AGCH's L1/L3
    (losses/reconstruction.py): ``sim_weight`` · [r(B_I, B_I) + r(B_T, B_T) + r(B_I, B_T)], r = mean squared error.
Why: the contrastive loss only knows the pairing (item i's image belongs with item i's text); the aggregated
similarity adds which *different* items look alike, which is what category-level retrieval rewards.
``sim_weight`` default 100: the balanced loss is N (= batch size) times larger than a plain InfoNCE, and the
reconstruction error is < 1, so a weight of the order of N makes the two comparable (not tuned on test data).
"""

from __future__ import annotations

from bitrieve.losses.contrastive import ContrastiveKind
from bitrieve.losses.reconstruction import similarity_reconstruction
from bitrieve.methods import register_method
from bitrieve.methods.base import NonNegative, Positive
from bitrieve.methods.ucmfh import UCMFH, UCMFHParams
from bitrieve.parts.similarity import aggregated_similarity


class AGCHFusionBalancedParams(UCMFHParams):
    loss: ContrastiveKind = "balanced"
    sim_weight: NonNegative = 100.0
    gamma_v: NonNegative = 1.0  # AGCH's Wiki values (γ_v 1, γ_t 0.8, ρ 4)
    gamma_t: NonNegative = 0.8
    rho: Positive = 4.0


@register_method("agch_fusion_balanced")
class AGCHFusionBalanced(UCMFH):
    name = "agch_fusion_balanced"
    paper = "bitrieve composed example: UCMFH fusion (Xia et al. 2023) + balanced contrastive + AGCH similarity " \
            "(Zhang et al. 2022)"
    Params = AGCHFusionBalancedParams
    smoke_params = {**UCMFH.smoke_params, "pretrain_epochs": 1}  # the fusion-only stage too

    def hash_stage_terms(self, batch, hv, ht, out):
        """UCMFH's hash-stage loss + sim_weight · [r(B_I, B_I) + r(B_T, B_T) + r(B_I, B_T)] (the fusion-only stage,
        ``pretrain_epochs`` > 0, keeps UCMFH's embedding term alone)."""
        p = self.params
        s = aggregated_similarity(batch["image"], batch["text"], p.gamma_v, p.gamma_t, p.rho).detach()
        rec = (similarity_reconstruction(s, hv) + similarity_reconstruction(s, ht)
               + similarity_reconstruction(s, hv, ht))
        out["loss"] = out["loss"] + p.sim_weight * rec
        out["reconstruction"] = rec
        return out
