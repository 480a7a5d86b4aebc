"""PCAH: the signs of the top principal components (PCA hashing).

The baseline of J. Wang, S. Kumar, S.-F. Chang, "Semi-Supervised Hashing for Large-Scale Search", IEEE TPAMI 34(12),
2012 (Sec. 6, "PCAH"), also the "PCA-Direct" baseline of Gong & Lazebnik (ITQ, CVPR 2011 / TPAMI 2013, Sec. 3):
W = the top-``bits`` eigenvectors of the training covariance, code = sgn((x − μ) W). The variance-maximising relaxation
max_W tr(Wᵀ XᵀX W), WᵀW = I, of ITQ's Eq. 1 (Gong et al.) is solved exactly by these eigenvectors.
``bits`` > d: there are only d directions; the remaining bits are constant (+1 for every item), so the ranking is
that of d bits.
"""

from __future__ import annotations

import torch

from bitrieve.methods import register_method
from bitrieve.methods.base import Params
from bitrieve.methods.families.shallow import ShallowHashing
from bitrieve.parts.shallow import principal_directions


class PCAHParams(Params):
    """No hyper-parameter besides the code length."""


@register_method("pcah")
class PCAH(ShallowHashing):
    name = "pcah"
    paper = ("J. Wang, S. Kumar, S.-F. Chang. Semi-Supervised Hashing for Large-Scale Search. IEEE TPAMI "
             "34(12):2393-2406, 2012 (the PCAH baseline).")
    Params = PCAHParams

    def __init__(self, params: PCAHParams, bits: int, info):
        super().__init__(params, bits, info)
        self.buffer("projection", self.dim, bits)

    def fit(self, x):
        self.projection.copy_(torch.from_numpy(principal_directions(x, self.bits)))

    def project(self, z):
        return z @ self.projection
