"""VSE++: Faghri, Fleet, Kiros, Fidler, "VSE++: Improving Visual-Semantic Embeddings with Hard Negatives", BMVC 2018.

Real-valued image-text matching (``output = "embedding"``: ranked by cosine, evaluated by Recall@K):
- image: precomputed features -> Linear(d, 1024) (Xavier uniform, zero bias) -> L2-normalise (official
  ``EncoderImagePrecomp``);
- text: token ids -> word embedding (300-d) -> 1-layer GRU (1,024) -> last hidden state -> L2-normalise
  (``parts/text.GRUTextEncoder``); or, for feature text such as Wiki's LDA topics, Linear(d, 1024) -> L2-normalise;
- loss: hinge triplet on cosine, margin 0.2, both directions, hardest negative per row and column ("MH", Sec. 3),
  summed over the batch (``max_violation = False`` gives the sum over all negatives, "SH");
- Adam lr 2e-4, x 0.1 after 15 of 30 epochs, batch 128, gradient-norm clip 2.

``binary = True`` is this project's hashing variant (not in the paper): the joint space is ``bits`` wide and the engine
also evaluates sign(embedding) by Hamming ranking; training is unchanged (cosine hinge on the real embeddings).
Model selection as released: the official train.py keeps the checkpoint with the best dev rsum; the configs do the
same through the engine's ``selection`` block (``metric: rsum``, ``keep: best``; a store's ``dev`` split, or a seeded
carve of training images where the store has none). Deviations: images are precomputed features (the paper's best
numbers fine-tune a ResNet-152); a batch may hold two captions of the same image, whose pairing then counts as a
negative (as in the official loader).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from bitrieve.losses.triplet import vse_hinge_loss
from bitrieve.methods import register_method
from bitrieve.methods.base import Batch, Count, Count0, DataInfo, HashMethod, NonNegative, Params, Positive, Stage
from bitrieve.parallel import rowwise
from bitrieve.parts.hashing import l2_normalize
from bitrieve.parts.text import FeatureTextEncoder, GRUTextEncoder


class VSEPPParams(Params):
    embed_dim: Count = 1024
    word_dim: Count = 300
    text_encoder: Literal["auto", "gru", "features"] = "auto"  # auto: gru when the card names a vocabulary
    vocab_size: Count | None = None  # default: from the dataset card (vocab_size)
    margin: NonNegative = 0.2
    max_violation: bool = True
    binary: bool = False
    lr: Positive = 2e-4
    epochs: Count = 30
    lr_decay_epochs: tuple[Count0, ...] = (15,)
    batch_size: Count = 128
    grad_clip: Positive | None = 2.0


def _card_text(card: dict) -> dict:
    """The text entry of a dataset card: ``card["features"]["text"]`` (canonical stores) or ``card["text"]``."""
    for node in ((card.get("features") or {}).get("text"), card.get("text")):
        if isinstance(node, dict):
            return node
    return {}


def card_vocab_size(card: dict) -> int | None:
    """The vocabulary size a dataset card declares (top level, ``text`` or ``features.text``); checks pad id 0."""
    text = _card_text(card)
    pad = text.get("pad_id", 0)
    if pad != 0:
        raise ValueError(f"vsepp: the dataset card's text pad_id is {pad}; the GRU encoder needs padding id 0")
    v = card.get("vocab_size", text.get("vocab_size"))
    return None if v is None else int(v)


@register_method("vsepp")
class VSEPP(HashMethod):
    name = "vsepp"
    paper = ("F. Faghri, D. J. Fleet, J. R. Kiros, S. Fidler. VSE++: Improving Visual-Semantic Embeddings with Hard "
             "Negatives. BMVC 2018.")
    Params = VSEPPParams
    family = "image-text matching"
    smoke_params = {"embed_dim": 16}
    prepare_on_load = False  # no prepare
    supervised = False
    output = "embedding"
    modalities = ("image", "text")

    def __init__(self, params: VSEPPParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        width = bits if params.binary else params.embed_dim
        self.width = width
        self.img_fc = nn.Linear(info.feature_dims["image"], width)
        r = math.sqrt(6.0) / math.sqrt(self.img_fc.in_features + width)  # official Xavier init
        nn.init.uniform_(self.img_fc.weight, -r, r)
        nn.init.zeros_(self.img_fc.bias)
        kind = params.text_encoder
        vocab = params.vocab_size or card_vocab_size(info.card)
        if kind == "auto":
            kind = "gru" if vocab is not None else "features"
        if kind == "gru":
            if vocab is None:
                raise ValueError("vsepp: text_encoder 'gru' needs the vocabulary size: set params.vocab_size or give "
                                 "the dataset card a 'vocab_size' (token-id text stores)")
            self.txt = GRUTextEncoder(vocab, params.word_dim, width)
        else:
            self.txt = FeatureTextEncoder(info.feature_dims["text"], width)
        self.text_kind = kind

    @property
    def code_width(self) -> int:
        return self.width

    @property
    def hamming_metrics(self) -> bool:  # ``binary: true``: trained as codes, so Hamming metrics on their signs too
        return self.params.binary

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality == "image":
            return l2_normalize(self.img_fc(x.flatten(1).float()))
        if modality == "text":
            return l2_normalize(self.txt(x))
        raise ValueError(f"vsepp encodes 'image' or 'text', got '{modality}'")

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        im = rowwise(lambda rows: self.encode("image", rows), batch["image"], modules=[self.img_fc])
        cap = rowwise(lambda rows: self.encode("text", rows), batch["text"], modules=[self.txt])
        if im.shape[0] < 2:  # a trailing batch of one pair has no negatives: contribute nothing
            zero = (im.sum() + cap.sum()) * 0.0
            return {"loss": zero, "i2t": zero.detach(), "t2i": zero.detach()}
        return vse_hinge_loss(im, cap, self.params.margin, self.params.max_violation)

    def param_groups(self):
        return {"net": {"params": list(self.parameters()), "lr": self.params.lr}}

    def stages(self) -> list[Stage]:
        p = self.params
        return [Stage("main", p.epochs, self.loss, ["net"], batch_size=p.batch_size, optimizer="adam",
                      schedule_milestones=tuple(p.lr_decay_epochs), schedule_gamma=0.1, schedule_unit="epoch",
                      grad_clip=p.grad_clip)]
