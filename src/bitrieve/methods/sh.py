"""SH: Spectral Hashing - thresholded analytical eigenfunctions of a box-shaped (uniform) distribution.

Y. Weiss, A. Torralba, R. Fergus, "Spectral Hashing", NIPS 2008, Sec. 3 (the algorithm at the end of Sec. 3.1):
1. PCA: z = (x − μ) W, W the top min(bits, d) principal directions;
2. fit a box: along each direction j, [a_j, b_j] = [min z_j − eps, max z_j + eps] over the training set;
3. the 1-D eigenfunctions of the weighted Laplacian for the uniform density on [a, b] are
   Φ_k(z) = sin(π/2 + kπ/(b − a) · (z − a)), with eigenvalue λ_k = 1 − exp(−ε²/2 · |kπ/(b − a)|²); λ grows with
   ω = kπ/(b − a), so the ``bits`` smallest non-trivial eigenvalues are the ``bits`` smallest ω² over all directions
   and k ≥ 1 (ε only scales them: no hyper-parameter); each bit is one (direction, k) mode;
4. code = sgn(Φ_k(z_j)) for the chosen modes.
The mode enumeration (k up to ⌈(bits + 1)(b_j − a_j)/max(b − a)⌉ per direction, the constant mode dropped, ties in
enumeration order) and the product form of step 4 are the released code's (docs/methods/shallow.md); a mode is
non-zero along one direction only, so the product is that direction's sine (the others are sin(π/2) = 1 exactly).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bitrieve.methods import register_method
from bitrieve.methods.base import Params
from bitrieve.methods.families.shallow import ShallowHashing
from bitrieve.parts.shallow import principal_directions


class SHParams(Params):
    """No hyper-parameter besides the code length (ε does not change which modes are the smallest)."""


@register_method("sh")
class SH(ShallowHashing):
    name = "sh"
    paper = "Y. Weiss, A. Torralba, R. Fergus. Spectral Hashing. NIPS 2008, 1753-1760."
    Params = SHParams

    def __init__(self, params: SHParams, bits: int, info):
        super().__init__(params, bits, info)
        self.npca = min(bits, self.dim)  # the released npca = min(nbits, Ndim)
        self.buffer("projection", self.dim, self.npca)
        self.buffer("box_low", self.npca)  # a_j
        self.buffer("frequencies", bits, self.npca)  # ω of each bit's mode along each direction (0: constant)

    def fit(self, x):
        w = principal_directions(x, self.npca)
        z = x @ w
        eps = np.finfo(np.float64).eps  # MATLAB's eps
        low, high = z.min(0) - eps, z.max(0) + eps
        self.projection.copy_(torch.from_numpy(w))
        self.box_low.copy_(torch.from_numpy(low))
        self.frequencies.copy_(torch.from_numpy(spectral_modes(high - low, self.bits) * (math.pi / (high - low))))

    def project(self, z):
        z = z @ self.projection - self.box_low
        return torch.stack([torch.sin(z * omega + math.pi / 2).prod(1) for omega in self.frequencies], 1)


def spectral_modes(ranges: np.ndarray, bits: int) -> np.ndarray:
    """(bits, p) integer modes k ≥ 0: the ``bits`` non-constant single-direction modes of smallest Σ (kπ/range)²."""
    most = np.ceil((bits + 1) * ranges / ranges.max()).astype(int)  # modes 0 .. most − 1 per direction
    modes = [np.zeros(len(ranges))]  # the constant mode, dropped below
    for j, m in enumerate(most):
        for k in range(1, m):
            modes.append(np.eye(len(ranges))[j] * k)
    modes = np.array(modes)
    eigen = ((modes * (math.pi / ranges)) ** 2).sum(1)  # −(eigenvalue order key): larger ω², larger λ
    return modes[np.argsort(eigen, kind="stable")[1 : bits + 1]]
