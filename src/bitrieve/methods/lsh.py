"""LSH: sign of random Gaussian projections (random-hyperplane hashing).

M. Charikar, "Similarity Estimation Techniques from Rounding Algorithms", STOC 2002, Sec. 3: h_r(x) = 1 if r·x ≥ 0
else 0, r drawn from the d-dimensional standard Gaussian, so that Pr[h_r(x) = h_r(y)] = 1 − θ(x, y)/π (θ the angle).
As in the shallow-hashing reference code (docs/methods/shallow.md), W is (d, bits) with i.i.d. N(0, 1) entries and
the code of x is sgn((x − μ) W), μ the training mean (``centre``, on by default: the angle is measured about the data's
centre, as the released demos centre the features before every method; off = FIRe's sgn(x W)). Nothing is learned
but μ: Datar et al.'s p-stable (E2LSH) variant, which quantizes a·x + b into buckets, is not what the references
implement and is not offered.
"""

from __future__ import annotations

import torch

from bitrieve.methods import register_method
from bitrieve.methods.base import Count0, Params
from bitrieve.methods.families.shallow import ShallowHashing


class LSHParams(Params):
    centre: bool = True  # subtract the training mean first (hashing-baseline construct_data.m:82-83)
    seed: Count0 | None = None  # the draw of W; None: the run seed via torch's generator


@register_method("lsh")
class LSH(ShallowHashing):
    name = "lsh"
    paper = "M. S. Charikar. Similarity Estimation Techniques from Rounding Algorithms. STOC 2002, 380-388."
    Params = LSHParams
    min_items = 1

    def __init__(self, params: LSHParams, bits: int, info):
        super().__init__(params, bits, info)
        self.buffer("projection", self.dim, bits)

    def fit(self, x):
        self.projection.copy_(torch.from_numpy(self.rng().standard_normal((self.dim, self.bits))))

    def project(self, z):
        return z @ self.projection
