"""ITQ: PCA, then the rotation that minimises the quantization error (PCA-ITQ).

Y. Gong, S. Lazebnik, A. Gordo, F. Perronnin, "Iterative Quantization: A Procrustean Approach to Learning Binary Codes
for Large-Scale Image Retrieval", IEEE TPAMI 35(12), 2013 (first: Gong & Lazebnik, CVPR 2011), Sec. 3:
1. V = (X − μ) W, W the top-``bits`` principal directions (the variance objective, Eq. 1, relaxed);
2. R orthogonal minimising the quantization loss Q(B, R) = ||B − V R||_F² (Eq. 2), alternating B = sgn(V R) and the
   Procrustes solution of the SVD of Bᵀ V, ``iterations`` times from a random orthogonal R (paper: 50;
   ``parts/shallow.py: itq_rotation``, the loop CCA-ITQ uses too);
3. code = sgn((x − μ) W R).
The initial R is the U of the SVD of a standard Gaussian (bits, bits) matrix, as the released ITQ.m. ``bits`` > d:
W's columns after the d-th are zero and R spreads the d directions over all bits (the loss is still Eq. 2).
"""

from __future__ import annotations

import numpy as np
import torch

from bitrieve.methods import register_method
from bitrieve.methods.base import Count0, Params
from bitrieve.methods.families.shallow import ShallowHashing
from bitrieve.parts.shallow import itq_rotation, principal_directions


class ITQParams(Params):
    iterations: Count0 = 50  # the paper's 50 (the released loop `for iter=0:n_iter` runs n_iter + 1 updates)
    seed: Count0 | None = None  # the initial rotation's draw; None: the run seed via torch's generator


@register_method("itq")
class ITQ(ShallowHashing):
    name = "itq"
    paper = ("Y. Gong, S. Lazebnik, A. Gordo, F. Perronnin. Iterative Quantization: A Procrustean Approach to Learning "
             "Binary Codes for Large-Scale Image Retrieval. IEEE TPAMI 35(12):2916-2929, 2013.")
    Params = ITQParams

    def __init__(self, params: ITQParams, bits: int, info):
        super().__init__(params, bits, info)
        self.buffer("projection", self.dim, bits)
        self.buffer("rotation", bits, bits)

    def fit(self, x):
        w = principal_directions(x, self.bits)
        start = np.linalg.svd(self.rng().standard_normal((self.bits, self.bits)))[0]
        self.projection.copy_(torch.from_numpy(w))
        self.rotation.copy_(torch.from_numpy(itq_rotation(x @ w, self.params.iterations, start)))

    def project(self, z):
        return z @ self.projection @ self.rotation
