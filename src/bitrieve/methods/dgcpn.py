"""DGCPN: Deep Graph-neighbor Coherence Preserving Network (unsupervised cross-modal hashing).

J. Yu, H. Zhou, Y. Zhan, D. Tao. "Deep Graph-neighbor Coherence Preserving Network for Unsupervised Cross-modal
Hashing". AAAI 2021, 35(5):4626-4634. Released code: github.com/Atmegal/DGCPN (commit 9f62c56: ``train.py``,
``train_div.py``, ``models.py``, ``load_data.py``); every default below is checked against it (provenance table:
docs/methods/baselines.md).

Target (paper Sec. 3.2; ``train_div.py:78-103``; parts/neighbourhood.py ``dgcpn_similarity``), computed ONCE over
the whole training set in ``prepare`` and indexed by the batch rows: S = 2((1-a2) S_pair + a2 · scale · P Pᵀ) - 1,
S_pair = a1 S_T + (1-a1) S_I, P = each row of S_pair with its ``knn_number`` smallest entries and its maximum zeroed,
row-normalised (so n - knn_number - 1 neighbours are kept).
Loss (paper Sec. 3.3; ``train_div.py:105-131`` ``loss_cal``): for codes (C_I, C_T) with cosines BI·BI, BT·BT, BI·BT,
  L = mse(diag(BI·BT), K) + dw·[mse(BT·BT ⊙ (1-I), S ⊙ (1-I)) + mse(BI·BT ⊙ (1-I), ...) + mse(BI·BI ⊙ (1-I), ...)]
      + cw·[mse(BI·BT, BI·BI) + mse(BI·BT, BT·BT) + mse(BI·BI, BT·BT) + mse(BI·BT, (BI·BT)ᵀ)]
(means over all n² entries, the zeroed diagonal included). Half-real, half-binary optimisation
(``train_div.py:133-172``), ``optimisation: released`` (default): three optimiser updates per batch through the
engine's ``Step``s -
  1. ``joint``: L(C_I, C_T), both networks;
  2. ``image``: a fresh forward pass of both networks, L(C_I, sign(C_T)), image network only;
  3. ``text``: L(sign(C_I), C_T) on the codes of step 2's forward pass (the image codes from before step 2's update,
     the text graph of step 2), text network only.
``optimisation: summed`` (switch, bitrieve's earlier reading): one update of the sum of the three losses.
Networks (``models.py``): x -> Linear(d, 4096) -> ReLU -> Dropout(0.5) -> Linear(4096, bits) -> tanh (α = 1: the
α schedule is commented out, ``train_div.py:138-139``); the text hash layer's weights are drawn from N(0, 0.3)
(``models.py:44``). The released image input is a precomputed VGG-19 fc7 vector, so feature mode is the released
setting; Wiki's 128-d SIFT vector takes its place here.
Defaults (``train.py:37-63``): a1 0.01, a2 0.3, K 1.5, dw = cw = 1, knn_number 3,000, scale 4,000 (MIRFlickr /
NUS-WIDE, 5,000 training pairs), SGD lr 0.005 (both networks), momentum 0.9, weight decay 5e-4, batch 32 (last
incomplete batch kept), 100 epochs.

Model selection: the released script evaluates validation mAP@all (I→T + T→I) after every epoch, keeps the best
checkpoint, stops after 11 epochs without improvement and tests the best checkpoint (``train.py:15-30``,
``train_div.py:197-223``). bitrieve's engine-level best-checkpoint selection will switch that on by config; until
then the configs train a fixed number of epochs and evaluate the last one (docs/methods/baselines.md).

Switches (documented deviations): ``optimisation: summed``; ``dropout: 0`` and ``text_hash_init_std: null`` give
PyTorch's default nets; ``input_norm: standardize`` (feature mode, see methods/djsrh.py); ``knn_number`` / ``scale``
``null`` take the MIRFlickr ratios 3,000 / 5,000 and 4,000 / 5,000 of the training size (the released Wiki values are
not published: ``train.py:55-60`` only says "for wiki 2100 - knn number from paper = knn number from code").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import torch
import torch.nn.functional as F

from bitrieve.losses.reconstruction import code_inner_products, similarity_reconstruction
from bitrieve.methods import register_method
from bitrieve.methods.base import (AnyFinite, Count, DataInfo, Fraction, Mix, NonNegative, Positive, Probability, Stage,
                                   Step)
from bitrieve.methods.families.two_tower import TwoTowerHashing, TwoTowerParams
from bitrieve.parts.neighbourhood import dgcpn_similarity


class DGCPNParams(TwoTowerParams):
    a1: Mix = 0.01
    a2: Mix = 0.3
    k_pair: AnyFinite = 1.5  # target of the paired codes' cosine (released ``K``)
    dw: NonNegative = 1.0
    cw: NonNegative = 1.0
    knn_number: int | None = Field(3000, ge=0)  # released --knn_number: smallest similarities dropped per row (keeps n - this - 1)
    knn_number_fraction: float = Field(0.6, ge=0, lt=1)  # knn_number null: round(fraction * n_train) (MIRFlickr: 3,000 / 5,000)
    scale: Positive | None = 4000.0  # null: scale_fraction * n_train
    scale_fraction: Fraction = 0.8
    half_binary: bool = True
    optimisation: Literal["released", "summed"] = "released"  # three updates per batch | one summed update
    dropout: Probability = 0.5  # released Dropout(0.5) between the hidden layer and the hash layer (both networks)
    text_hash_init_std: float | None = Field(0.3, gt=0)  # released N(0, 0.3) text hash-layer weights; null: PyTorch's default
    lr_image: Positive = 0.005
    lr_text: Positive = 0.005
    drop_last: bool = False  # the released loader keeps the last incomplete batch
    epochs: Count = 100
    max_train_for_graph: Count = 20000  # the n×n target is held in memory; refuse beyond this


@register_method("dgcpn")
class DGCPN(TwoTowerHashing):
    name = "dgcpn"
    paper = ("J. Yu, H. Zhou, Y. Zhan, D. Tao. Deep Graph-neighbor Coherence Preserving Network for Unsupervised "
             "Cross-modal Hashing. AAAI 2021.")
    Params = DGCPNParams
    smoke_params = {"hidden": 32, "knn_number": 30, "scale": 8.0}

    def __init__(self, params: DGCPNParams, bits: int, info: DataInfo):
        if params.half_binary is False and params.optimisation == "released":
            raise ValueError("dgcpn: optimisation 'released' is the half-binary loop; half_binary: false needs "
                             "optimisation: summed")
        # released nets: Dropout(0.5) between the hidden and the hash layer
        super().__init__(params, bits, info, dropout=params.dropout)
        if params.text_hash_init_std is not None:
            torch.nn.init.normal_(self.encoders["text"].hash.fc.weight, 0.0, params.text_hash_init_std)
        self._graph: torch.Tensor | None = None  # recomputed by prepare (not saved: n×n)
        self._step_codes: tuple[torch.Tensor, torch.Tensor] | None = None  # step 2 -> step 3 of one batch

    def knn_number(self, n: int) -> int:
        p = self.params
        return p.knn_number if p.knn_number is not None else round(p.knn_number_fraction * n)

    def alpha(self) -> float:
        return 1.0  # the released α schedule is commented out

    def prepare(self, train) -> None:
        super().prepare(train)  # input standardisation (feature mode)
        p = self.params
        n = len(train)
        if n > p.max_train_for_graph:
            raise ValueError(f"dgcpn: the graph target is n×n; {n} training items exceed params.max_train_for_graph "
                             f"= {p.max_train_for_graph} (raise it if memory allows: {4 * n * n / 2**30:.1f} GiB)")
        knn_number = self.knn_number(n)
        if not 0 <= knn_number <= n - 2:
            raise ValueError(f"dgcpn: params.knn_number = {knn_number} must leave at least one neighbour of the "
                             f"{n} training items (0 <= knn_number <= {n - 2})")
        scale = p.scale if p.scale is not None else p.scale_fraction * n
        image = torch.as_tensor(train.inputs["image"]).float().reshape(n, -1)
        text = torch.as_tensor(train.inputs["text"]).float().reshape(n, -1)
        self._graph = dgcpn_similarity(image, text, a1=p.a1, a2=p.a2, knn_number=knn_number, scale=scale)

    def target(self, batch):
        if self._graph is None:
            raise RuntimeError("dgcpn: prepare(train) must run before training (it builds the neighbour graph)")
        rows = batch["index"].to(self._graph.device).long()
        return self._graph[rows][:, rows].to(batch["image"].device)

    def _single(self, code_image, code_text, s):
        """``loss_cal`` (train_div.py:105-131): pair + dw · distance + cw · consistency."""
        p = self.params
        ii, tt, it = (code_inner_products(a, b) for a, b in
                      ((code_image, None), (code_text, None), (code_image, code_text)))
        off = 1.0 - torch.eye(s.shape[0], device=s.device, dtype=s.dtype)
        pair = F.mse_loss(it.diagonal(), torch.full_like(it.diagonal(), p.k_pair))
        # released: mse(X ⊙ (1-I), S ⊙ (1-I)) - the zeroed diagonal still counts in the mean over n²
        dist = sum((similarity_reconstruction(s, a, b, reduction="none") * off).mean()
                   for a, b in ((code_text, None), (code_image, code_text), (code_image, None)))
        cons = F.mse_loss(it, ii) + F.mse_loss(it, tt) + F.mse_loss(ii, tt) + F.mse_loss(it, it.t())
        return pair + p.dw * dist + p.cw * cons, pair, dist, cons

    def objective(self, code_image, code_text, s):
        """The summed objective (``optimisation: summed``): L(H_I, H_T) + L(H_I, sign H_T) + L(sign H_I, H_T)."""
        loss, pair, dist, cons = self._single(code_image, code_text, s)
        out = {"pair": pair, "distance": dist, "consistency": cons}
        if self.params.half_binary:
            l_i = self._single(code_image, torch.sign(code_text).detach(), s)[0]
            l_t = self._single(torch.sign(code_image).detach(), code_text, s)[0]
            out.update(image_vs_binary_text=l_i, text_vs_binary_image=l_t)
            loss = loss + l_i + l_t
        out["loss"] = loss
        return out

    # --- the released three-update loop (train_div.py:149-172) -------------------------------------------------
    def _joint_step(self, batch):
        with torch.no_grad():
            s = self.target(batch)
        loss, pair, dist, cons = self._single(self.codes("image", batch["image"]), self.codes("text", batch["text"]), s)
        if self.training:
            self.steps_done += 1
        return {"loss": loss, "pair": pair, "distance": dist, "consistency": cons}

    def _image_step(self, batch):
        with torch.no_grad():
            s = self.target(batch)
        code_image, code_text = self.codes("image", batch["image"]), self.codes("text", batch["text"])
        # step 3 uses this forward pass: the image codes before this step's update, the text codes with their graph
        self._step_codes = (torch.sign(code_image).detach(), code_text)
        return {"loss": self._single(code_image, torch.sign(code_text).detach(), s)[0]}

    def _text_step(self, batch):
        if self._step_codes is None:
            raise RuntimeError("dgcpn: the 'text' step runs after the 'image' step of the same batch")
        with torch.no_grad():
            s = self.target(batch)
        sign_image, code_text = self._step_codes
        self._step_codes = None
        return {"loss": self._single(sign_image, code_text, s)[0]}

    def stages(self) -> list[Stage]:
        p = self.params
        kwargs = {**self.stage_kwargs(), "drop_last": p.drop_last}
        if p.optimisation == "summed":
            return [Stage("main", p.epochs, self._loss, ["image", "text"], **kwargs)]
        steps = (Step("joint", self._joint_step, ("image", "text")), Step("image", self._image_step, ("image",)),
                 Step("text", self._text_step, ("text",)))
        return [Stage("main", p.epochs, None, ["image", "text"], steps=steps, **kwargs)]
