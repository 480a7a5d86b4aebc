"""The UCMFH fork's variant: per-modality transformers + cross-attention (tudouPotatoo/UCMFH, branch hashNetVersion).

Built on UCMFH (Xia et al., Information Fusion 99:101968, 2023; methods/ucmfh.py) as released in the fork
(github.com/tudouPotatoo/UCMFH, branch hashNetVersion, commit c33e571: ``model.py``, ``ICMR.py``, ``metric.py``,
``load_dataset.py``, ``test-*.sh``); every default is checked against it (provenance table: docs/methods/ucmfh.md).

  ImageTransformer, TextTransformer (model.py:7-26): each a 2-layer, 8-head, 512-d post-LN transformer encoder
  (feed-forward 2,048, dropout 0.1) over the item as a length-1 sequence, then a final LayerNorm (model.py:19, :26);
  CrossAttention (model.py:29-95): image attends to text and text to image, 8 heads each, residual, dropout 0.1,
  LayerNorm (parts/cross_attention.py) -> image / text embeddings (512-d, not normalised);
  hash MLPs (model.py:146-222): Linear(512, 1024) -> ReLU -> Dropout(0.3) -> Linear(1024, bits) -> L2-normalise (the
  progressive tanh is switched off, ICMR.py:74).
  Training (ICMR.py:244-292, the released ``task=1``): ONE stage from a freshly initialised model (demo.py:35 builds a
  new Solver; the ``task=0`` checkpoint is never loaded for hashing, utils.py:28-45 runs only for tasks 2/3):
  contrastive(embeddings) + 0.5 · contrastive(hash outputs), encoders and MLPs together; Adam betas (0.5, 0.999),
  1e-4 encoders, 1e-3 MLPs (ICMR.py:52-54), the MLPs' lr ×1.2 at iterations 30 and 80 (MultiStepLR stepped every
  batch, ICMR.py:56-61, :289-290; COCO ×0.6 at 200), batch 128, the first 4,992 pairs, last batch dropped
  (load_dataset.py:51-57); epochs MIRFlickr 100 / NUS-WIDE 150 / COCO 500 (test-*.sh).
  Evaluation (ICMR.py:141-215): both codes of an item from its (image, text) pair, every item its own sequence, the
  last incomplete batch of 128 dropped: ``eval.extra_evaluations: [fork-pair-input]`` (NOT uni-modal retrieval).

``loss: balanced`` (the fork's ContrastiveLossBalanced) or ``ntxent`` (UCMFH's). Switches (documented deviations):
  * ``encoder_epochs > 0``: a stage training the encoders alone first (contrastive on the embeddings, the fork's
    ``task=0``) whose weights the hash stage then continues from - bitrieve's earlier reading, not the fork's;
  * ``final_layer_norm: false``; ``head_schedule: none``;
  * ``whole_batch_sequence: true``: the samples of a training batch attend to each other (the fork never does);
  * uni-modal encoding (bitrieve's default evaluation): the cross-attention needs the other modality; ``encode``
    feeds the stored mean training feature of the missing modality (``unimodal_fill``, as in methods/ucmfh.py);
  * inputs whose width is not 512 (Wiki) get a learned Linear(d, 512) first (the fork's inputs are 512-d CLIP).
"""

from __future__ import annotations

import torch
from torch import nn

from bitrieve.losses.contrastive import ContrastiveKind
from bitrieve.methods import register_method
from bitrieve.methods.base import Count, Count0, DataInfo, Positive, Stage
from bitrieve.methods.families.pair_input import PAIR_INPUT
from bitrieve.methods.families.fusion import ContrastiveHashParams, FusionHashing, HeadSchedule, head_schedule
from bitrieve.parts.cross_attention import CrossAttention
from bitrieve.parts.fusion_hashing import HashHead, input_projection, register_fill
from bitrieve.parts.transformer import TokenTransformer

class UCMFHVariantParams(ContrastiveHashParams):
    loss: ContrastiveKind = "balanced"  # the fork's ContrastiveLossBalanced; "ntxent" = UCMFH's released loss
    nhead: Count = 8
    head_hidden: Count = 1024
    lr_encoders: Positive = 1e-4
    encoder_epochs: Count0 = 0  # > 0: an encoders-only stage first, continued by the hash stage (not the fork's)
    hash_epochs: Count = 100  # the fork's task=1 (test-flickr.sh: 100; NUS-WIDE 150, COCO 500)
    final_layer_norm: bool = True  # LayerNorm after each modality transformer (model.py:19, :26)
    head_schedule: HeadSchedule = "released"  # MLP lr x1.2 at iterations 30, 80 (COCO: "released_coco")
    whole_batch_sequence: bool = False


@register_method("ucmfh_variant")
class UCMFHVariant(FusionHashing):
    name = "ucmfh_variant"
    paper = ("UCMFH fork tudouPotatoo/UCMFH (branch hashNetVersion): UCMFH (X. Xia et al., When CLIP meets cross-modal "
             "hashing retrieval: A new strong baseline, Information Fusion 99:101968, 2023) with modality "
             "transformers and cross-attention.")
    Params = UCMFHVariantParams
    smoke_params = {**FusionHashing.smoke_params, "encoder_epochs": 1}  # the encoders-only stage too
    extra_evaluations = dict(PAIR_INPUT)  # families/pair_input.py: the fork's own evaluation too

    def __init__(self, params: UCMFHVariantParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        p, d = params, params.modality_dim
        self.project = nn.ModuleDict({m: input_projection(info.feature_dims[m], d) for m in ("image", "text")})
        self.transformers = nn.ModuleDict({m: TokenTransformer(d, p.nhead, p.layers, p.dim_feedforward, p.dropout,
                                                               final_norm=p.final_layer_norm)
                                           for m in ("image", "text")})
        self.cross = CrossAttention(d, p.nhead, p.dropout)
        self.heads = nn.ModuleDict({m: HashHead(d, p.head_hidden, bits, p.head_dropout, tanh=False,
                                                normalize_input=False) for m in ("image", "text")})
        register_fill(self, {m: info.feature_dims[m] for m in ("image", "text")})

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
        out.append(Stage("hash", p.hash_epochs, lambda b: self._loss(b, True), ["encoders", "heads"], **common,
                         **head_schedule(p.head_schedule)))
        return out
