"""DJSRH: Deep Joint-Semantics Reconstructing Hashing (unsupervised cross-modal hashing).

S. Su, Z. Zhong, C. Zhang. "Deep Joint-Semantics Reconstructing Hashing for Large-Scale Unsupervised Cross-Modal
Retrieval". ICCV 2019, pp. 3027-3035. Released code: github.com/zs-zhong/DJSRH @ 6041c2d (settings.py, train.py,
models.py, metric.py); provenance table in docs/methods/baselines.md.

Target (Sec. 3.2, Eq. 1-3; parts/neighbourhood.py): S = μ[(1-η) S̃ + η S̃S̃ᵀ/n], S̃ = β S_I + (1-β) S_T from the
frozen image features and the text features of the mini-batch. Codes: B = tanh(α·h) with α = √(epoch+1) (models.py
``set_alpha``); loss (Eq. 4-6, released weights): λ1‖cos(B_I,B_I) - S‖² + ‖cos(B_I,B_T) - S‖² + λ2‖cos(B_T,B_T) - S‖²
(mean squared errors). SGD momentum 0.9, weight decay 5e-4, batch 32 (last incomplete batch dropped), MU 1.5,
ETA 0.4. Per dataset (settings.py): MIRFlickr β 0.9, λ1 = λ2 = 0.1, lr image 1e-3 / text 1e-2, 80 epochs; NUS-WIDE
β 0.6, 0.1, 0.1, 1e-3 / 1e-2, 80; Wiki β 0.3, 0.3, 0.3, 1e-2 / 1e-2, 200 (configs/djsrh_*.yaml).

Precision: S is computed in float32, as in the released code (CUDA float32 tensors: ``torch.FloatTensor`` at
train.py:80, the cosines at :92-98); a float64 re-typing of the released step differs from it by less than 5e-6
(tests/test_parity.py).

Deviations (feature mode): the released image network is an ImageNet AlexNet fine-tuned end to end with S_I from a
frozen copy's fc7; here the image input is a precomputed feature vector, S_I is its cosine, and the image hash
network is an MLP d -> 4096 -> bits (the text network's shape). The released code evaluates mAP@50 with its own
``calculate_top_map`` (metric.py:130-156), the top-K formula of bitrieve's default ``map@50`` (protocols
``deephash`` / ``ucmfh``; docs/evaluation.md).
"""

from __future__ import annotations

import torch

from bitrieve.losses.reconstruction import similarity_reconstruction
from bitrieve.methods import register_method
from bitrieve.methods.base import Count, Mix, NonNegative, Positive
from bitrieve.methods.families.two_tower import TwoTowerHashing, TwoTowerParams
from bitrieve.parts.neighbourhood import djsrh_joint_similarity


class DJSRHParams(TwoTowerParams):
    beta: NonNegative = 0.9  # S̃ = β S_I + (1-β) S_T (MIRFlickr)
    eta: Mix = 0.4
    mu: Positive = 1.5
    lambda1: NonNegative = 0.1  # weight of the image-image term
    lambda2: NonNegative = 0.1  # weight of the text-text term
    lr_image: Positive = 1e-3
    lr_text: Positive = 1e-2
    epochs: Count = 80
    alpha_schedule: bool = True  # tanh(√(epoch+1) · h); off: plain tanh


@register_method("djsrh")
class DJSRH(TwoTowerHashing):
    name = "djsrh"
    paper = ("S. Su, Z. Zhong, C. Zhang. Deep Joint-Semantics Reconstructing Hashing for Large-Scale Unsupervised "
             "Cross-Modal Retrieval. ICCV 2019.")
    Params = DJSRHParams

    def target(self, batch) -> torch.Tensor:
        p = self.params
        return djsrh_joint_similarity(batch["image"].float(), batch["text"].float(), p.beta, p.eta, p.mu)

    def objective(self, code_image, code_text, s):
        p = self.params
        l_ii = similarity_reconstruction(s, code_image)
        l_it = similarity_reconstruction(s, code_image, code_text)
        l_tt = similarity_reconstruction(s, code_text)
        loss = p.lambda1 * l_ii + l_it + p.lambda2 * l_tt
        return {"loss": loss, "image_image": l_ii, "image_text": l_it, "text_text": l_tt}
