"""JDSH: Joint-modal Distribution-based Similarity Hashing (unsupervised cross-modal hashing).

S. Liu, S. Qian, Y. Guan, J. Zhan, L. Ying. "Joint-modal Distribution-based Similarity Hashing for Large-scale
Unsupervised Deep Cross-modal Retrieval". SIGIR 2020, pp. 1379-1388. Released code: github.com/KaiserLew/JDSH
(commit caa8224: ``JDSH.py``, ``models.py``, ``config/JDSH_MIRFlickr.json``, ``config/JDSH_NUSWIDE.json``);
provenance table in docs/methods/baselines.md.

Target (paper Sec. 3.2 joint-modal similarity, Sec. 3.3 DSDW; ``JDSH.py:118-145``; parts/neighbourhood.py):
S̃ = α S_I + β S_T + λ (S_H + S_Hᵀ)/2, re-weighted by the distribution-based similarity decision: below ``left =
LOC_LEFT - ALPHA·SCALE_LEFT`` × (1 + L1 e^{-(s - MIN)}), above ``right = LOC_RIGHT + BETA·SCALE_RIGHT``
× (1 + L2 e^{s - MAX}), then × μ. Loss (``JDSH.py:147-163`` ``cal_loss``): INTRA·‖cos(B_I,B_I) - S‖²
+ ‖cos(B_I,B_T) - S‖² + ‖cos(B_T,B_I) - S‖² - mean_i cos(b^I_i, b^T_i) + INTRA·‖cos(B_T,B_T) - S‖² (mean squared
errors). Codes tanh(√(epoch+1)·h) (``models.py:29-30``, set every epoch, ``JDSH.py:67-68``). SGD momentum 0.9, weight
decay 5e-4, batch 32 with the last incomplete batch dropped (``JDSH.py:32-36``), 300 epochs.

Defaults = the current released MIRFlickr config (``config/JDSH_MIRFlickr.json:2-18``): α 0.5, β 0.1, λ 0.4,
μ 1.4, INTRA 0.1, lr 0.01 / 0.01, MIN -0.52, MAX 0.68, ALPHA 2, LOC_LEFT -0.49, SCALE_LEFT 0.019, BETA 4,
LOC_RIGHT -0.49, SCALE_RIGHT 0.088, L1 0.1, L2 0.2. (μ = 1.47 and the NUS-WIDE values without right-side
thresholds come from a ``config.py`` the authors deleted on 2020-12-08, commit c62460f; the JSON configs replaced it.)
configs/jdsh_nuswide.yaml carries ``config/JDSH_NUSWIDE.json``.

Networks. Released image network (``models.py:8-30``): an ImageNet AlexNet, frozen (its forward pass runs under
``torch.no_grad``), whose fc7 output (4,096-d, the classifier's dropout layers active in training mode) gives S_I,
followed by the only trained image layer Linear(4096, bits). Released text network (``models.py:33-50``):
Linear(d, 4096) -> ReLU -> Linear(4096, bits), as here. Feature mode (the difference): the image input is a
precomputed feature vector, S_I is its cosine (no dropout), and the image hash network is the text network's shape,
an MLP d -> 4096 -> bits (``hidden``), i.e. one trained hidden layer more than the released Linear(4096, bits) on
fc7 - kept so that DJSRH, JDSH and DGCPN share one feature-mode network on features that are not CNN activations
(Wiki's 128-d SIFT). JDSH reports no Wiki results: configs/jdsh_wiki.yaml uses the MIRFlickr thresholds (dataset
fits of the released config, unverified on Wiki).
"""

from __future__ import annotations

from bitrieve.losses.reconstruction import code_inner_products, similarity_reconstruction
from bitrieve.methods import register_method
from bitrieve.methods.base import AnyFinite, Count, NonNegative, Positive
from bitrieve.methods.families.two_tower import TwoTowerHashing, TwoTowerParams
from bitrieve.parts.neighbourhood import jdsh_joint_similarity


class JDSHParams(TwoTowerParams):
    alpha: NonNegative = 0.5
    beta: NonNegative = 0.1
    lamb: NonNegative = 0.4
    mu: Positive = 1.4
    intra: NonNegative = 0.1
    s_min: AnyFinite = -0.52  # MIN
    s_max: AnyFinite = 0.68  # MAX
    alpha_left: Positive = 2.0  # ALPHA
    loc_left: AnyFinite = -0.49
    scale_left: Positive = 0.019
    beta_right: Positive = 4.0  # BETA
    loc_right: AnyFinite = -0.49
    scale_right: Positive = 0.088
    l1: NonNegative = 0.1
    l2: NonNegative = 0.2
    lr_image: Positive = 0.01
    lr_text: Positive = 0.01
    epochs: Count = 300
    alpha_schedule: bool = True


@register_method("jdsh")
class JDSH(TwoTowerHashing):
    name = "jdsh"
    paper = ("S. Liu, S. Qian, Y. Guan, J. Zhan, L. Ying. Joint-modal Distribution-based Similarity Hashing for "
             "Large-scale Unsupervised Deep Cross-modal Retrieval. SIGIR 2020.")
    Params = JDSHParams

    def target(self, batch):
        p = self.params
        return jdsh_joint_similarity(batch["image"].float(), batch["text"].float(), alpha=p.alpha, beta=p.beta,
                                     lamb=p.lamb, mu=p.mu, left=p.loc_left - p.alpha_left * p.scale_left,
                                     right=p.loc_right + p.beta_right * p.scale_right, l1=p.l1, l2=p.l2,
                                     s_min=p.s_min, s_max=p.s_max)

    def objective(self, code_image, code_text, s):
        p = self.params
        l_ii, l_tt = similarity_reconstruction(s, code_image), similarity_reconstruction(s, code_text)
        l_it = similarity_reconstruction(s, code_image, code_text) + similarity_reconstruction(s, code_text, code_image)
        pair = code_inner_products(code_image, code_text).diagonal().mean()
        loss = p.intra * l_ii + l_it - pair + p.intra * l_tt
        return {"loss": loss, "image_image": l_ii, "cross": l_it, "pair_cosine": pair, "text_text": l_tt}
