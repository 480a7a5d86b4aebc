"""AGCH: Aggregation-based Graph Convolutional Hashing (unsupervised cross-modal hashing).

P.-F. Zhang, Y. Li, Z. Huang, X.-S. Xu, "Aggregation-Based Graph Convolutional Hashing for Unsupervised Cross-Modal
Retrieval", IEEE Transactions on Multimedia 24:466-479, 2022, doi:10.1109/TMM.2021.3053766. No official code has been
released (none linked from the paper or the cross-modal hashing paper lists; the public "AGCH" re-implementations are
third-party). Section and equation numbers below are the published paper's (checked against its text).

Model (Sec. III-B, Eqs. 4-7; widths Sec. IV-C)
  image encoder  feature mode: x^v -> 4096 (ReLU) = f^v -> c (tanh)       [B^v, Eq. 4]
                 AlexNet mode: AlexNet conv1-fc7 = f^v -> FC c (tanh), fc8 replaced
  text encoder   x^t -> 4096 (ReLU) = f^t -> c (tanh)                     [B^t, Eq. 4]
  fusion         B^h = tanh(FC(f^v ⊕ f^t)), on the high-level features f   [Eq. 5]
  GCN, one per modality, on f^v / f^t, graph = the batch similarity S (Eq. 6, Ã = S, D̃_ii = Σ_j Ã_ij):
                 2 graph-conv layers (ReLU) + FC (tanh), 4096 -> 2048 -> 2048 -> c       [B^gv, B^gt, Eq. 7]
  At test time only the two encoders run (Eq. 17); the engine takes sign(·).

Similarity (Sec. III-C, Eqs. 8-12): S = 2 (C ⊙ D) − 1 from the frozen INPUT features, see
:func:`bitrieve.parts.similarity.aggregated_similarity` (the printed Eq. 12 and its worked example disagree on D;
the default follows the example, ``distance_form`` switches).

Objective (Sec. III-D, Eqs. 13-16), L = α L1 + δ L2 + L3 on L2-normalised codes ("the binary representations ... are
all normalized"), r(X, Y) = Σ_ij (S_ij − X̂_iᵀŶ_j)², a(X, Y) = Σ_i ‖X̂_i − Ŷ_i‖²:
  L1 = r(B^v, B^v) + r(B^t, B^t) + r(B^h, B^h)                                  (Eq. 13)
  L2 = r(B^gv, B^gv) + r(B^gt, B^gt) + a(B^gv, B^v) + a(B^gt, B^t)               (Eq. 14)
  L3 = β [r(B^v, B^h) + r(B^t, B^h)] + λ [a(B^v, B^h) + a(B^t, B^h)]            (Eq. 15)
The printed sums run over m² pairs for r and over m items for a. ``reduction = "pairs"`` (default) divides every
term by the same m², which keeps Eq. 16's relative weights; ``"mean"`` (each term over its own element count: r over
m², a over m·c) multiplies λ and the GCN alignment weight by m/c (x2 at 16 bits, x1/4 at 128 bits with m = 32) and
so changes the objective with the code length; ``"sum"`` is the printed scale (m² = 1,024x larger at batch 32).

Training (Sec. IV-C): SGD, momentum 0.9, weight decay 5e-4, batch 32; learning rates image encoder 1e-4, text encoder
1e-2, GCNs 1e-3, fusion 1e-2. The "alternating update" (Sec. III-E, Algorithm 1) is ordinary back-propagation of
Eq. 16 with each module on its own learning rate — there is no discrete code step — so it is one Stage training every
group. ρ = 4, δ = 0.01; MIRFlickr α = β = 1, λ = 10, γ_v = 2, γ_t = 0.3, 40 epochs (the defaults here); NUS-WIDE
λ = 5, 80 epochs; Wiki α = 0.4, β = 0.3, λ = 5, γ_v = 1, γ_t = 0.8, 150 epochs (configs/agch_*.yaml). The paper chose
α, β, λ, γ "by a validation procedure" for AlexNet features.

Switches (:class:`AGCHParams`; defaults = the paper's reading): ``gamma_mode``, ``renormalize_similarity`` (Eq. 8
has no re-normalisation), ``distance_form`` (Eq. 12 printed vs worked example), ``adjacency`` (Ã = S before
2S − 1), ``gcn_self_loops`` (Eq. 6 uses Ã = S, whose diagonal already carries the self weight; Kipf & Welling's
A + I is the switch), ``gcn_dims``, ``fusion_input`` (Eq. 5: f, the 4,096-d features; ``codes`` = the c-d tanh
outputs), ``reduction``, ``alexnet_trainable``. Ablations AGCH-1..5 (Sec. IV-D.4): ``similarity_metric`` = cosine /
euclidean / cosine_text_euclidean_image (S = γ C_text + (1 − γ) D_image, γ = ``ablation_mix``), ``use_fusion=False``,
``use_gcn=False``. docs/methods/agch.md has the provenance table.

Deviations / additions (feature mode only, not in the paper): the image encoder is an MLP on precomputed features
instead of AlexNet (the paper's AlexNet mode is ``input_mode="alexnet"``); ``standardize_inputs`` (off by default)
can z-score encoder inputs. The paper's image learning rate 1e-4 was chosen for fine-tuning a pretrained AlexNet; it
is kept as the default for the from-scratch MLP too (faithful, but the image branch then trains slowly — see the
``agree_v_h`` / ``quant_gap_v`` diagnostics and the engine's parameter-movement diagnostic).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from bitrieve.codes.diagnostics import bit_balance
from bitrieve.codes.encode import eval_mode
from bitrieve.losses.reconstruction import code_alignment, similarity_reconstruction
from bitrieve.methods import register_method
from bitrieve.errors import TooFewItems
from bitrieve.methods.base import Batch, Count, DataInfo, HashMethod, NonNegative, Params, Positive, Probability, Stage
from bitrieve.parallel import rowwise
from bitrieve.parts.backbones import imagenet_normalize
from bitrieve.parts.encoders import AlexNetHashEncoder, FrozenAlexNetFC7, MLPHashEncoder
from bitrieve.parts.fusion import ConcatFCFusion
from bitrieve.parts.graph import GCNHash, normalized_adjacency
from bitrieve.parts.similarity import aggregated_similarity
from bitrieve.parts.standardize import fit_standardization, register_standardization, standardize


class AGCHParams(Params):
    # --- inputs / architecture ---
    input_mode: Literal["features", "alexnet"] = Field(
        "features", description="features: precomputed image features through an MLP; alexnet: raw images, "
                                "ImageNet AlexNet fine-tuned end to end (paper), S from a frozen fc7 copy")
    weights: str | None = Field(None, description="AlexNet state_dict path (alexnet mode); None = random init")
    alexnet_trainable: bool = Field(True, description="fine-tune conv1-fc7 (paper, lr_image) or freeze them")
    standardize_inputs: Literal["none", "image", "both"] = Field(
        "none", description="feature mode: z-score these modalities' encoder inputs with training-set mean/std "
                             "(prepare), an analogue of the ImageNet mean/std normalisation of the paper's raw "
                             "images; off by default (features as given; no mAP gain on Wiki in a 30-epoch check). "
                             "The similarity S always uses the raw features")
    hidden: int = Field(4096, ge=1, description="encoder hidden width (paper: 4096, = AlexNet fc7 width)")
    gcn_dims: list[Count] = Field([2048, 2048], min_length=1,
                                description="graph-conv output widths before the final FC to c bits; the paper's "
                                            "'4096 -> 2048 -> c' read as 4096 -> 2048 -> 2048 -> c")
    fusion_input: Literal["codes", "hidden"] = Field(
        "hidden", description="what the fusion FC concatenates: the encoders' high-level (4,096-d hidden) features "
                              "f^v ⊕ f^t (Eq. 5, paper) or their c-d tanh outputs (codes)")
    # --- similarity (Sec. III-B) ---
    gamma_v: NonNegative = 2.0
    gamma_t: NonNegative = 0.3
    rho: float = Field(4.0, gt=0)
    gamma_mode: Literal["features", "similarity"] = "features"
    renormalize_similarity: bool = Field(False, description="re-normalise Z̃ after the γ weighting so C is a cosine "
                                                             "(not in the paper: Eq. 8-9 keep C_ii = γ_v² + γ_t²)")
    distance_form: Literal["norm", "sqrt_norm"] = Field(
        "norm", description="D = exp(−‖Z̃_i − Z̃_j‖/ρ) (the paper's worked example) or exp(−√‖Z̃_i − Z̃_j‖/ρ) (Eq. 12 as "
                            "printed)")
    similarity_metric: Literal["aggregated", "cosine", "euclidean", "cosine_text_euclidean_image"] = Field(
        "aggregated", description="AGCH | AGCH-1 (cosine) | AGCH-2 (Euclidean) | AGCH-3 (γ text cosine + (1 − γ) "
                                  "image Euclidean similarity)")
    ablation_mix: float = Field(0.5, ge=0.0, le=1.0, description="γ of AGCH-3 (S = γ C + (1 − γ) D); the paper does not "
                                                                 "give its value")
    neutral_point: Literal["paper", "quantile"] = Field(
        "paper", description="where 2S - 1 puts a pair at 0: paper = at C ⊙ D = 0.5 (Sec. III-C); quantile = at the "
                             "neutral_quantile of the off-diagonal C ⊙ D of training batches (feature mode, fitted "
                             "once in prepare, labels never used; not in the paper: the level of C ⊙ D follows the "
                             "input features' cosine level, docs/methods/agch.md 'Feature mode')")
    neutral_quantile: float = Field(0.8, gt=0.0, lt=1.0, description="with neutral_point: quantile, the fraction of "
                                                                      "training pairs given a negative target")
    adjacency: Literal["raw", "rescaled"] = Field(
        "raw", description="GCN graph from C ⊙ D before 2S − 1 (raw, non-negative for non-negative features) or "
                           "after (rescaled; degrees then from |A|)")
    gcn_self_loops: bool = Field(False, description="Ã = S + I (Kipf & Welling) instead of the paper's Ã = S (Eq. 6; "
                                                     "S's diagonal already carries the self weight)")
    # --- objective (Sec. III-D) ---
    alpha: NonNegative = 1.0
    beta: NonNegative = 1.0
    lam: NonNegative = Field(10.0, description="λ, weight of the code alignment to the fused code in L3")
    delta: NonNegative = 0.01
    reduction: Literal["pairs", "mean", "sum"] = Field(
        "pairs", description="pairs: every Eq. 16 term summed as printed and divided by one common m² (keeps the "
                             "paper's relative weights); mean: each term over its own element count (m² for the "
                             "reconstruction terms, m·c for the alignment terms: scales λ and the GCN alignment by "
                             "m/c); sum: ‖·‖²_F as printed (m² = 1,024x larger at batch 32)")
    use_fusion: bool = Field(True, description="False = AGCH-4: no fusion module; L3 aligns B^v and B^t directly")
    use_gcn: bool = Field(True, description="False = AGCH-5: no GCN branches, L2 = 0")
    # --- training (Sec. IV-A) ---
    epochs: int = Field(40, ge=0)
    batch_size: int = Field(32, ge=2)
    lr_image: Positive = 1e-4
    lr_text: Positive = 1e-2
    lr_gcn: Positive = 1e-3
    lr_fusion: Positive = 1e-2
    momentum: Probability = 0.9
    weight_decay: NonNegative = 5e-4
    weight_decay_gcn: float | None = Field(
        None, ge=0, description="the GCN group's weight decay (None: weight_decay). Feature-mode configs that set "
        "lr_gcn = 1e-3 / δ set it to weight_decay · δ, so the decay step lr · wd stays the paper's 1e-3 · 5e-4 "
        "(docs/methods/agch.md, 'The GCN')")


@register_method("agch")
class AGCH(HashMethod):
    name = "agch"
    paper = ("P.-F. Zhang, Y. Li, Z. Huang, X.-S. Xu. Aggregation-Based Graph Convolutional Hashing for Unsupervised "
             "Cross-Modal Retrieval. IEEE Transactions on Multimedia 24:466-479, 2022.")
    Params = AGCHParams
    family = "cross-modal hashing"
    smoke_params = {"hidden": 16, "gcn_dims": [8, 8]}
    prepare_on_load = False  # prepare fits buffers only: the standardisation and the neutral point

    def __init__(self, params: AGCHParams, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        p = params
        for m in self.modalities:
            if m not in info.feature_dims:
                raise ValueError(f"AGCH needs modalities {self.modalities}; the data has {sorted(info.feature_dims)}")
        if p.input_mode == "alexnet":
            self.image_encoder = AlexNetHashEncoder(bits, weights=p.weights, trainable=p.alexnet_trainable)
            self.image_reference = FrozenAlexNetFC7(weights=p.weights)  # frozen fc7 for the similarity target
        else:
            self.image_encoder = MLPHashEncoder(info.feature_dims["image"], [p.hidden], bits)
            self.image_reference = None
        self.text_encoder = MLPHashEncoder(info.feature_dims["text"], [p.hidden], bits)
        # input standardisation statistics (feature mode), filled by prepare(); width 0 = not standardised
        register_standardization(self, {m: info.feature_dims[m] if self._standardized(m) else 0
                                        for m in self.modalities})
        if p.neutral_point == "quantile":
            if p.input_mode != "features":
                raise ValueError("AGCH: neutral_point 'quantile' is a feature-mode setting (input_mode: features)")
            # the C ⊙ D value that 2S - 1 maps to 0, fitted by prepare (a buffer only here: the paper's setting keeps
            # its state_dict keys)
            self.register_buffer("similarity_neutral", torch.tensor(0.5))
        hv, ht = self.image_encoder.hidden_features, self.text_encoder.hidden_features
        if p.use_fusion:
            widths = (bits, bits) if p.fusion_input == "codes" else (hv, ht)
            self.fusion = ConcatFCFusion(widths, bits, activation="tanh")
        else:
            self.fusion = None
        if p.use_gcn:
            self.gcn_image = GCNHash(hv, p.gcn_dims, bits)
            self.gcn_text = GCNHash(ht, p.gcn_dims, bits)
        else:
            self.gcn_image = self.gcn_text = None

    def _standardized(self, modality: str) -> bool:
        p = self.params
        if p.input_mode == "alexnet" and modality == "image":
            return False
        return p.standardize_inputs == "both" or p.standardize_inputs == modality

    def prepare(self, train) -> None:
        """Training-set mean / std of the standardised modalities' features (feature mode; summed in float64)."""
        fit_standardization(self, train.inputs, [m for m in self.modalities if self._standardized(m)],
                            accumulate=torch.float64)
        if self.params.neutral_point == "quantile":
            self.similarity_neutral.fill_(self.fit_neutral_point(train.inputs))

    def fit_neutral_point(self, inputs, batches: int = 64, seed: int = 0) -> float:
        """The ``neutral_quantile`` of the off-diagonal C ⊙ D over ``batches`` random training batches (fixed seed,
        so a reload reproduces it; labels are never read). With it, 2(C ⊙ D − s₀) replaces 2 C ⊙ D − 1: the same
        target shifted so that a fixed share of training pairs is positive, whatever the features' cosine level."""
        p = self.params
        n = len(inputs["image"])
        m = min(p.batch_size, n)
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(batches):
            rows = np.sort(rng.choice(n, m, replace=False))
            batch = {k: torch.as_tensor(np.asarray(inputs[k][rows])) for k in ("image", "text")}
            _, parts = self.similarity(batch, return_parts=True)  # C ⊙ D (S_raw) is never shifted
            off = ~torch.eye(m, dtype=torch.bool)
            values.append(parts["S_raw"][off].double())
        return float(torch.quantile(torch.cat(values), p.neutral_quantile))

    def _encoder_input(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality == "image" and self.params.input_mode == "alexnet":
            return self._images(x)
        return standardize(self, modality, x)  # width-0 buffers (not standardised): the features as given

    # --- training ---------------------------------------------------------------------------------------------
    def param_groups(self):
        p = self.params
        groups = {
            "image": {"params": [q for q in self.image_encoder.parameters() if q.requires_grad], "lr": p.lr_image},
            "text": {"params": list(self.text_encoder.parameters()), "lr": p.lr_text},
        }
        if self.gcn_image is not None:
            groups["gcn"] = {"params": [*self.gcn_image.parameters(), *self.gcn_text.parameters()], "lr": p.lr_gcn}
            if p.weight_decay_gcn is not None:
                groups["gcn"]["weight_decay"] = p.weight_decay_gcn
        if self.fusion is not None:
            groups["fusion"] = {"params": list(self.fusion.parameters()), "lr": p.lr_fusion}
        return groups

    def stages(self):
        p = self.params
        return [Stage(name="main", epochs=p.epochs, loss=self.loss, groups=list(self.param_groups()),
                      batch_size=p.batch_size, optimizer="sgd",
                      optimizer_kwargs={"momentum": p.momentum, "weight_decay": p.weight_decay})]

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        """Raw uint8 images -> ImageNet-normalised floats (alexnet mode); float inputs are taken as given."""
        if x.dtype == torch.uint8:
            return imagenet_normalize(x.float() / 255.0)
        return x.float()

    def similarity(self, batch: Batch, return_parts: bool = False):
        """The batch target S (and, with ``return_parts``, C, D and C ⊙ D) from the frozen inputs; with
        neutral_point: quantile, S = 2(C ⊙ D − s₀) with the fitted s₀ (s₀ = 0.5 is the paper's 2S − 1)."""
        p = self.params
        with torch.no_grad():
            if self.image_reference is not None:
                xv = rowwise(self.image_reference, self._images(batch["image"]), modules=[self.image_reference])
            else:
                xv = batch["image"].reshape(batch["image"].shape[0], -1).float()
            xt = batch["text"].reshape(batch["text"].shape[0], -1).float()
            s, parts = aggregated_similarity(xv, xt, p.gamma_v, p.gamma_t, p.rho, gamma_mode=p.gamma_mode,
                                             renormalize=p.renormalize_similarity, metric=p.similarity_metric,
                                             distance_form=p.distance_form, mix=p.ablation_mix, return_parts=True)
            if p.neutral_point == "quantile":
                s = s + (1.0 - 2.0 * self.similarity_neutral)  # 2(S_raw − s₀) = (2 S_raw − 1) + (1 − 2 s₀)
            return (s, parts) if return_parts else s

    def forward_codes(self, batch: Batch, s_parts: dict | None = None) -> dict[str, torch.Tensor]:
        """Every branch's continuous codes on a batch: v, t (encoders), h (fusion), gv, gt (GCNs)."""
        p = self.params
        # encoders and fusion map rows to rows: split across ranks under torchrun (bitrieve/parallel.py); the GCNs
        # mix the batch through the adjacency and run on the whole batch
        fv, bv = rowwise(self.image_encoder, self._encoder_input("image", batch["image"]),
                         modules=[self.image_encoder])
        ft, bt = rowwise(self.text_encoder, self._encoder_input("text", batch["text"]), modules=[self.text_encoder])
        out = {"v": bv, "t": bt}
        if self.fusion is not None:
            out["h"] = rowwise(self.fusion, *((bv, bt) if p.fusion_input == "codes" else (fv, ft)),
                               modules=[self.fusion])
        if self.gcn_image is not None:
            if s_parts is None:
                raise ValueError("AGCH.forward_codes: the GCN branches need the similarity parts (s_parts)")
            a = s_parts["S_raw"] if p.adjacency == "raw" else s_parts["S"]
            # abs degrees: identical to row sums when A >= 0, and defined when A has negative entries
            adj = normalized_adjacency(a, self_loops=p.gcn_self_loops, abs_degree=True)
            out["gv"] = self.gcn_image(fv, adj)
            out["gt"] = self.gcn_text(ft, adj)
        return out

    def loss_terms(self, s: torch.Tensor, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every term of Eq. 16 (L1 Eq. 13, L2 Eq. 14, L3 Eq. 15) under ``reduction``, and their weighted sum."""
        p = self.params
        red = p.reduction

        def r(x: str, y: str | None = None) -> torch.Tensor:
            return similarity_reconstruction(s, codes[x], None if y is None else codes[y], reduction=red)

        def a(x: str, y: str) -> torch.Tensor:
            return code_alignment(codes[x], codes[y], reduction=red)

        zero = s.new_zeros(())
        terms: dict[str, torch.Tensor] = {"rec_v": r("v"), "rec_t": r("t")}
        terms["rec_h"] = r("h") if "h" in codes else zero
        l1 = terms["rec_v"] + terms["rec_t"] + terms["rec_h"]
        if "gv" in codes:
            terms["rec_gv"], terms["rec_gt"] = r("gv"), r("gt")
            terms["align_gv_v"], terms["align_gt_t"] = a("gv", "v"), a("gt", "t")
            l2 = terms["rec_gv"] + terms["rec_gt"] + terms["align_gv_v"] + terms["align_gt_t"]
        else:
            l2 = zero
        if "h" in codes:
            terms["cross_rec_vh"], terms["cross_rec_th"] = r("v", "h"), r("t", "h")
            terms["align_v_h"], terms["align_t_h"] = a("v", "h"), a("t", "h")
            l3 = (p.beta * (terms["cross_rec_vh"] + terms["cross_rec_th"])
                  + p.lam * (terms["align_v_h"] + terms["align_t_h"]))
        else:  # AGCH-4: no fused code to meet at; the two modalities meet directly
            terms["cross_rec_vt"], terms["align_v_t"] = r("v", "t"), a("v", "t")
            l3 = p.beta * terms["cross_rec_vt"] + p.lam * terms["align_v_t"]
        terms.update(L1=l1, L2=l2, L3=l3)
        terms["loss"] = p.alpha * l1 + p.delta * l2 + l3
        return terms

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The Stage loss: L = α L1 + δ L2 + L3 on one mini-batch (Eq. 16; module docstring)."""
        if batch["image"].shape[0] < 2:
            raise TooFewItems(f"AGCH: a training batch needs at least 2 pairs (the similarity is between batch "
                              f"items), got {batch['image'].shape[0]}")
        s, parts = self.similarity(batch, return_parts=True)
        parts = {**parts, "S": s}
        return self.loss_terms(s, self.forward_codes(batch, parts))

    # --- inference --------------------------------------------------------------------------------------------
    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality == "image":
            return self.image_encoder(self._encoder_input("image", x))[1]
        if modality == "text":
            return self.text_encoder(self._encoder_input("text", x))[1]
        raise ValueError(f"AGCH.encode: unknown modality '{modality}' (image | text)")

    # --- monitoring -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, batch: Batch, labels: torch.Tensor | None) -> dict[str, float]:
        """Scalars for monitoring (labels used only here, never in training).

        s_label_corr: Pearson correlation of the off-diagonal S with label similarity (share >= 1 label);
        s_mean / s_pos_frac: level of S; bit_balance_{v,t}: mean |E[sign b_k]| over bits (0 = balanced);
        bit_entropy_{v,t}: mean per-bit entropy in bits (1 = balanced); agree_x_y: fraction of equal signs between
        branches; gcn_weight_abs / gcn_out_abs: GCN weight and output scale; quant_gap_{v,t}: mean |tanh − sign|;
        plus every loss term.
        """
        with eval_mode(self):
            s, parts = self.similarity(batch, return_parts=True)
            codes = self.forward_codes(batch, {**parts, "S": s})
            terms = self.loss_terms(s, codes)
        out: dict[str, float] = {f"loss_{k}": float(v) for k, v in terms.items()}
        n = s.shape[0]
        off = ~torch.eye(n, dtype=torch.bool, device=s.device)
        out["s_mean"] = float(s[off].mean())
        out["s_pos_frac"] = float((s[off] > 0).float().mean())
        if labels is not None and n > 1:
            lab = labels.float().to(s.device)
            same = ((lab @ lab.T) > 0).float()[off]
            out["s_label_corr"] = _pearson(s[off], same)
            out["label_pos_frac"] = float(same.mean())
        signs = {k: torch.where(v >= 0, 1.0, -1.0) for k, v in codes.items()}
        for k in ("v", "t"):
            balance, entropy = bit_balance(signs[k])
            out[f"bit_balance_{k}"] = float(balance.abs().mean())
            out[f"bit_entropy_{k}"] = float(entropy.mean())
            out[f"quant_gap_{k}"] = float((codes[k] - signs[k]).abs().mean())
        for x, y in (("v", "t"), ("v", "h"), ("t", "h"), ("gv", "v"), ("gt", "t"), ("gv", "gt")):
            if x in signs and y in signs:
                out[f"agree_{x}_{y}"] = float((signs[x] == signs[y]).float().mean())
        if self.gcn_image is not None:
            weights = [m.linear.weight for g in (self.gcn_image, self.gcn_text) for m in g.convs]
            out["gcn_weight_abs"] = float(torch.stack([w.abs().mean() for w in weights]).mean())
            out["gcn_out_abs"] = float(torch.cat([codes["gv"], codes["gt"]]).abs().mean())
        return out


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / den if den > 0 else float("nan")
