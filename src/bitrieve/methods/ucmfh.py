"""UCMFH: Unsupervised Contrastive Multi-modal Fusion Hashing, the official model.

X. Xia, G. Dong, F. Li, L. Zhu, X. Ying. "When CLIP meets cross-modal hashing retrieval: A new strong baseline".
Information Fusion 99:101968, 2023. Released code: github.com/XinyuXia97/UCMFH (facts taken from it, not code).

Model (paper Sec. 3.2-3.4; released ``model.py``/``ICMR.py``):
  token_i = [CLIP image 512 ; CLIP text 512] -> 2-layer transformer encoder (4 heads, FF 2,048, dropout 0.1,
  post-LN) -> L2-normalise all 1,024 dims -> split into image / text embeddings (parts/transformer.py);
  per-modality hash head: L2-normalise -> Linear(512, 4096) -> ReLU -> Dropout(0.3) -> Linear(4096, bits) -> tanh
  -> L2-normalise (≈ 22M parameters at 128 bits).
Loss (paper Eq. 5-8; released ``metric.py``): SimCLR NT-Xent (τ = 0.5, same-modality negatives included) on the
embeddings + 0.5 × the same on the hash outputs, one joint stage (released ``task=1``). ``loss: balanced`` swaps both
terms for the UCMFH fork's ContrastiveLossBalanced (losses/contrastive.py). ``pretrain_epochs > 0`` adds the released
``task=0`` fusion-only stage first.
Training: Adam betas (0.5, 0.999), lr 1e-4 (fusion) and 1e-3 (heads), batch 128, the first 4,992 training pairs,
epochs MIRFlickr 100 / NUS-WIDE 150 / COCO 500 (configs/), last epoch reported, evaluation mAP@50.

Evaluation - what is uni-modal here. The fusion encoder needs both halves of the token, but a cross-modal hash
function must code an image from the image alone. bitrieve's ``encode`` fills the missing half with a constant that
uses no test data: ``unimodal_fill="train_mean"`` (default: the mean training feature of the missing modality,
computed in ``prepare`` and stored in the checkpoint - it keeps the token in the training distribution, which zeros
do not for CLIP features) or ``"zeros"``. The released protocol instead codes a query image from its (image, text)
pair (maintainer, issue #4): that is :meth:`UCMFH.encode_pair`; `eval.extra_evaluations: [ucmfh-pair-input]` stores its
mAP in results.json under that label (and `pair-input` without the batching quirks), never as uni-modal retrieval
(methods/families/pair_input.py evaluates it).

Released-code quirks, each only behind a named switch (defaults = bitrieve's clean behaviour):
  * ``ucmfh-pair-input`` (methods/families/pair_input.py): the released evaluation feeds a test batch as ONE sequence, so
    samples attend to each other (``encode_pair(..., whole_batch_sequence=True)``, parts/transformer.py), and its
    query/retrieval loaders use ``drop_last=True`` (batch 128), so the last incomplete batch of queries and of the
    database is silently never evaluated; bitrieve's evaluation never drops rows;
  * ``head_schedule="released"``: MultiStepLR ×1.2 at *iterations* 30 and 80 (MIRFlickr/NUS-WIDE; COCO ×0.6 at 200)
    on the hash heads' learning rate only, as the released scheduler (``Stage.schedule_groups``);
  * tie order: the released ``calculate_top_map`` uses an unstable argsort (arbitrary tie order); bitrieve's
    evaluator breaks ties by database order (``eval.tie: stable``) or averages over them (``tie-averaged``).
Measured consequence (docs/methods/ucmfh.md): trained as in the paper, the fusion encoder may ignore one half of
the token, so uni-modal codes of that modality collapse (Wiki: image codes nearly constant). The opt-in
``unimodal_training`` (probability per batch of training on uni-modal tokens, the way ``encode`` sees them) is a
bitrieve extension, not the paper's method, and off by default.
Datasets whose feature widths are not 512 (Wiki: 128 / 10) get a learned Linear(d, 512) per modality first
(``modality_dim``); on CLIP features (512) no projection is created, as in the paper.
"""

from __future__ import annotations


import torch
from pydantic import Field
from torch import nn

from bitrieve.methods import register_method
from bitrieve.methods.base import Count, Count0, DataInfo, Positive, Stage
from bitrieve.methods.families.fusion import ContrastiveHashParams, FusionHashing, HeadSchedule, head_schedule
from bitrieve.parts.fusion_hashing import HashHead, input_projection, register_fill, with_fill
from bitrieve.parts.transformer import FusionTransformer

class UCMFHParams(ContrastiveHashParams):
    lr_fusion: Positive = 1e-4
    epochs: Count = 100  # MIRFlickr 100, NUS-WIDE 150, COCO 500
    pretrain_epochs: Count0 = 0  # > 0: a fusion-only stage first (released task=0)
    head_schedule: HeadSchedule = "released"  # ICMR.py:44-49 (MIRFlickr/NUS-WIDE); COCO: released_coco
    # bitrieve extension, NOT in the paper (default 0 = faithful): probability that a training batch is encoded the
    # way ``encode`` works at test time, each modality from itself with the other token half = the fill constant
    unimodal_training: float = Field(0.0, ge=0.0, le=1.0)


@register_method("ucmfh")
class UCMFH(FusionHashing):
    name = "ucmfh"
    paper = ("X. Xia, G. Dong, F. Li, L. Zhu, X. Ying. When CLIP meets cross-modal hashing retrieval: A new strong "
             "baseline. Information Fusion 99:101968, 2023.")
    Params = UCMFHParams
    smoke_params = {**FusionHashing.smoke_params, "pretrain_epochs": 1}  # the fusion-only stage too

    def __init__(self, params: UCMFHParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        d = params.modality_dim
        self.project = nn.ModuleDict({m: input_projection(info.feature_dims[m], d) for m in ("image", "text")})
        self.fusion = FusionTransformer(d, d, params.nhead, params.layers, params.dim_feedforward, params.dropout)
        self.heads = nn.ModuleDict({m: HashHead(d, params.head_hidden, bits, params.head_dropout)
                                    for m in ("image", "text")})
        register_fill(self, {m: info.feature_dims[m] for m in ("image", "text")})

    # --- model ----------------------------------------------------------------------------------------------
    def embed(self, image: torch.Tensor, text: torch.Tensor, whole_batch_sequence: bool = False):
        v = self.project["image"](image.reshape(image.shape[0], -1).float())
        t = self.project["text"](text.reshape(text.shape[0], -1).float())
        return self.fusion(v, t, whole_batch_sequence)

    def embed_for_training(self, image: torch.Tensor, text: torch.Tensor):
        """Pair embeddings (paper), or with probability ``unimodal_training`` the uni-modal ones ``encode`` uses."""
        if self.params.unimodal_training > 0 and float(torch.rand(())) < self.params.unimodal_training:
            image = image.reshape(image.shape[0], -1).float()
            text = text.reshape(text.shape[0], -1).float()
            ev, _ = self.embed(*with_fill(self, "image", image))
            _, et = self.embed(*with_fill(self, "text", text))
            return ev, et
        return self.embed(image, text)

    # --- training -------------------------------------------------------------------------------------------
    def param_groups(self):
        p = self.params
        return {"fusion": {"params": [*self.project.parameters(), *self.fusion.parameters()], "lr": p.lr_fusion},
                "heads": {"params": list(self.heads.parameters()), "lr": p.lr_heads}}

    def stages(self) -> list[Stage]:
        p = self.params
        common = self.stage_kwargs()
        stages = []
        if p.pretrain_epochs > 0:
            stages.append(Stage("fusion", p.pretrain_epochs, lambda b: self._loss(b, False), ["fusion"], **common))
        stages.append(Stage("hash", p.epochs, lambda b: self._loss(b, True), ["fusion", "heads"], **common,
                            **head_schedule(p.head_schedule)))
        return stages

