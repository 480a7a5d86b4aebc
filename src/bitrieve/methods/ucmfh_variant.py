"""The user's UCMFH variant: per-modality transformers + cross-attention, two-stage training.

Built on UCMFH (Xia et al., Information Fusion 99:101968, 2023; methods/ucmfh.py) as described in the user's fork
(../shared/references/ucmfh-training-flow-balanced-loss.zh.md):

  ImageTransformer, TextTransformer: each a 2-layer, 8-head, 512-d transformer encoder (parts/transformer.py);
  CrossAttention: image attends to text and text to image, 8 heads each, residual, dropout 0.1, LayerNorm
  (parts/cross_attention.py) -> image / text embeddings (512-d);
  hash MLPs: Linear(512, 1024) -> ReLU -> Dropout(0.3) -> Linear(1024, bits) -> L2-normalise (no tanh).
  Stage 1 ("encoders", 100 epochs): contrastive(embeddings), encoders only.
  Stage 2 ("hash", 300 epochs): contrastive(embeddings) + 0.5 · contrastive(hash outputs), encoders and MLPs.
  Optimisers as UCMFH (Adam betas (0.5, 0.999); 1e-4 encoders, 1e-3 MLPs), batch 128, first 4,992 pairs.

``loss: balanced`` (the fork's ContrastiveLossBalanced) or ``ntxent`` (UCMFH's). Deviations / unknowns, stated:
  * the fork's transformers' feed-forward width is not given; PyTorch's default 2,048 is used (``dim_feedforward``);
  * whether the fork feeds a batch as one sequence during training is not stated; bitrieve treats every sample as
    its own sequence (as UCMFH's training does); ``whole_batch_sequence: true`` makes the samples of a training batch
    attend to each other instead (then a code depends on its batch - use with care);
  * uni-modal encoding: the cross-attention needs the other modality; ``encode`` feeds the stored mean training
    feature of the missing modality (``unimodal_fill``, as in methods/ucmfh.py); the released pair-input protocol is
    :meth:`UCMFHVariant.encode_pair`, labelled separately;
  * inputs whose width is not 512 (Wiki) get a learned Linear(d, 512) first.
"""

from __future__ import annotations

import torch
from torch import nn

from bitrieve.losses.contrastive import ContrastiveKind
from bitrieve.methods.base import DataInfo, HashMethod, Stage
from bitrieve.methods.ucmfh import ContrastiveHashParams, FusionHashMixin, HashHead, input_projection
from bitrieve.parts.cross_attention import CrossAttention
from bitrieve.parts.transformer import TokenTransformer


class UCMFHVariantParams(ContrastiveHashParams):
    loss: ContrastiveKind = "balanced"  # the fork's ContrastiveLossBalanced; "ntxent" = UCMFH's released loss
    nhead: int = 8
    head_hidden: int = 1024
    lr_encoders: float = 1e-4
    encoder_epochs: int = 100  # stage 1
    hash_epochs: int = 300  # stage 2
    whole_batch_sequence: bool = False


class UCMFHVariant(FusionHashMixin, HashMethod):
    name = "ucmfh_variant"
    paper = ("User variant of UCMFH (X. Xia et al., When CLIP meets cross-modal hashing retrieval: A new strong "
             "baseline, Information Fusion 99:101968, 2023) with modality transformers and cross-attention.")
    Params = UCMFHVariantParams

    def __init__(self, params: UCMFHVariantParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        p, d = params, params.modality_dim
        self.project = nn.ModuleDict({m: input_projection(info.feature_dims[m], d) for m in ("image", "text")})
        self.transformers = nn.ModuleDict({m: TokenTransformer(d, p.nhead, p.layers, p.dim_feedforward, p.dropout)
                                           for m in ("image", "text")})
        self.cross = CrossAttention(d, p.nhead, p.dropout)
        self.heads = nn.ModuleDict({m: HashHead(d, p.head_hidden, bits, p.head_dropout, tanh=False,
                                                normalize_input=False) for m in ("image", "text")})
        self._init_fill(info)

    def embed(self, image: torch.Tensor, text: torch.Tensor, whole_batch_sequence: bool | None = None):
        seq = self.params.whole_batch_sequence if whole_batch_sequence is None else whole_batch_sequence
        v = self.transformers["image"](self.project["image"](image.reshape(image.shape[0], -1).float()), seq)
        t = self.transformers["text"](self.project["text"](text.reshape(text.shape[0], -1).float()), seq)
        return self.cross(v, t, seq)

    def param_groups(self):
        p = self.params
        enc = [*self.project.parameters(), *self.transformers.parameters(), *self.cross.parameters()]
        return {"encoders": {"params": enc, "lr": p.lr_encoders},
                "heads": {"params": list(self.heads.parameters()), "lr": p.lr_heads}}

    def stages(self) -> list[Stage]:
        p = self.params
        common = self.stage_kwargs()
        out = []
        if p.encoder_epochs > 0:
            out.append(Stage("encoders", p.encoder_epochs, lambda b: self._loss(b, False), ["encoders"], **common))
        out.append(Stage("hash", p.hash_epochs, lambda b: self._loss(b, True), ["encoders", "heads"], **common))
        return out
