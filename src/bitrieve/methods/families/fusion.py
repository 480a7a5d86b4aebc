"""Contrastive fusion hashing: the family body of UCMFH, the UCMFH fork's variant and agch_fusion_balanced.

A fusion encoder ``embed(image, text, whole_batch_sequence) -> (e_v, e_t)`` (each method builds its own from
parts/transformer.py or parts/cross_attention.py), one hash head per modality (parts/fusion_hashing.py
``HashHead``) and the fill buffers for uni-modal queries; trained with a contrastive loss on the embeddings plus
``hash_weight`` × the same loss on the hash outputs (UCMFH Eq. 5-8, losses/contrastive.py). A method supplies
``embed``, ``heads``, ``param_groups`` and ``stages`` (using :meth:`FusionHashing.stage_kwargs` and
:func:`head_schedule`); a composed method adds terms through :meth:`FusionHashing.hash_stage_terms`.
"""

from __future__ import annotations

from typing import Literal

import torch

from bitrieve.losses.contrastive import ContrastiveKind, contrastive
from bitrieve.methods.base import Count, HashMethod, NonNegative, Params, Positive, Probability
from bitrieve.methods.families.pair_input import PAIR_INPUT
from bitrieve.parts.fusion_hashing import fit_fill, with_fill

UnimodalFill = Literal["train_mean", "zeros"]
HeadSchedule = Literal["none", "released", "released_coco"]


class ContrastiveHashParams(Params):
    """Fields shared by the contrastive fusion-hashing family (ucmfh, ucmfh_variant, agch_fusion_balanced)."""

    loss: ContrastiveKind = "ntxent"  # released: NT-Xent; "balanced": the fork's ContrastiveLossBalanced
    symmetric: bool = False  # balanced / infonce only: add the text->image direction
    temperature: Positive = 0.5
    hash_weight: NonNegative = 0.5  # loss = c(embeddings) + hash_weight * c(hash outputs)
    modality_dim: Count = 512  # token half width; inputs of another width get a Linear(d, modality_dim)
    nhead: Count = 4
    layers: Count = 2
    dim_feedforward: Count = 2048
    dropout: Probability = 0.1
    head_hidden: Count = 4096
    head_dropout: Probability = 0.3
    lr_heads: Positive = 1e-3
    betas: tuple[Probability, Probability] = (0.5, 0.999)
    batch_size: Count = 128
    max_rows: Count | None = 4992  # the released code trains on the first 4,992 pairs
    unimodal_fill: UnimodalFill = "train_mean"



class FusionHashing(HashMethod):
    """What the fusion-hashing family shares: a model ``embed(image, text, whole_batch_sequence)`` -> (e_v, e_t),
    ``heads`` and the fill buffers (parts/fusion_hashing.py); the contrastive loss of UCMFH (Eq. 5-8), uni-modal
    ``encode`` and the pair-input ``encode_pair``."""

    family = "cross-modal hashing"
    smoke_params = {"modality_dim": 16, "nhead": 2, "dim_feedforward": 32, "head_hidden": 32, "max_rows": None}
    prepare_on_load = False  # prepare fits the fill buffers only
    extra_evaluations = {n: PAIR_INPUT[n] for n in ("ucmfh-pair-input", "pair-input")}  # families/pair_input.py

    def prepare(self, train) -> None:
        """Record the mean training feature per modality (over the rows the stages train on)."""
        if self.params.unimodal_fill == "train_mean":  # type: ignore[attr-defined]
            fit_fill(self, train.inputs, self.params.max_rows)  # type: ignore[attr-defined, arg-type]

    def embed_for_training(self, image: torch.Tensor, text: torch.Tensor):
        return self.embed(image, text)

    def _loss(self, batch, with_hash: bool) -> dict[str, torch.Tensor]:
        """c(e_v, e_t) [+ hash_weight · c(h_v, h_t) + :meth:`hash_stage_terms`], c = the configured contrastive loss
        (UCMFH Eq. 8). ``with_hash=False`` is the fusion-only stage: the embedding term alone."""
        p = self.params
        ev, et = self.embed_for_training(batch["image"], batch["text"])
        emb = contrastive(p.loss, ev, et, p.temperature, p.symmetric)
        if not with_hash:
            return {"loss": emb, "contrastive_embedding": emb}
        hv, ht = self.heads["image"](ev), self.heads["text"](et)
        hsh = contrastive(p.loss, hv, ht, p.temperature, p.symmetric)
        out = {"loss": emb + p.hash_weight * hsh, "contrastive_embedding": emb, "contrastive_hash": hsh}
        return self.hash_stage_terms(batch, hv, ht, out)

    def hash_stage_terms(self, batch, hv: torch.Tensor, ht: torch.Tensor, out: dict) -> dict[str, torch.Tensor]:
        """Hook for a composed method: add terms on the hash outputs (hv, ht) to ``out`` (and to ``out["loss"]``)."""
        return out

    def stage_kwargs(self) -> dict:
        p = self.params
        return dict(batch_size=p.batch_size, optimizer="adam", optimizer_kwargs={"betas": tuple(p.betas)},
                    max_rows=p.max_rows, drop_last=True)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Uni-modal code: the missing modality is the ``unimodal_fill`` constant; a code never depends on other
        samples (every item is its own sequence)."""
        if modality not in ("image", "text"):
            raise ValueError(f"{self.name}.encode: unknown modality '{modality}' (image | text)")
        image, text = with_fill(self, modality, x.reshape(x.shape[0], -1).float())
        ev, et = self.embed(image, text, whole_batch_sequence=False)
        return self.heads[modality](ev if modality == "image" else et)

    def encode_pair(self, image: torch.Tensor, text: torch.Tensor, whole_batch_sequence: bool = False):
        """Both codes of each item of a batch from its (image, text) pair: the released evaluation (methods/families/pair_input.py
        batches it). NOT uni-modal retrieval (an image query's code uses its text). ``whole_batch_sequence``: the
        batch is one sequence, as in the released evaluation. Returns (image outputs, text outputs)."""
        ev, et = self.embed(image, text, whole_batch_sequence)
        return self.heads["image"](ev), self.heads["text"](et)


def head_schedule(kind: str) -> dict:
    """Stage keywords of the released hash-head schedule (MultiStepLR stepped per *iteration*, heads only)."""
    if kind == "released":
        return dict(schedule_milestones=(30, 80), schedule_gamma=1.2, schedule_unit="iter", schedule_groups=("heads",))
    if kind == "released_coco":
        return dict(schedule_milestones=(200,), schedule_gamma=0.6, schedule_unit="iter", schedule_groups=("heads",))
    return {}
