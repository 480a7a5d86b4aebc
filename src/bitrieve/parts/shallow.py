"""Closed-form pieces of the shallow hashing methods (numpy, float64): PCA directions and the ITQ rotation.

- :func:`principal_directions`: PCAH, ITQ and SH project centred features on the top principal directions;
- :func:`itq_rotation`: the ITQ iteration (Gong, Lazebnik, Gordo, Perronnin, TPAMI 2013, Sec. 3.1), shared by ITQ
  (``methods/itq.py``) and CCA-ITQ (``methods/cca_itq.py``); each caller draws its own initial rotation.
"""

from __future__ import annotations

import numpy as np


def principal_directions(x: np.ndarray, k: int) -> np.ndarray:
    """(d, k): the eigenvectors of the covariance of the centred rows ``x`` (n, d) with the k largest eigenvalues,
    in decreasing order (MATLAB ``eigs(cov(X), k)`` in the released code).

    Each column's sign is fixed so that its largest-magnitude entry is positive: an eigenvector's sign is arbitrary
    (it differs between LAPACK builds), and flipping a bit for every item leaves every Hamming distance unchanged,
    so this only makes the codes reproducible. ``k > d``: the columns after the d-th are zero (there is no further
    direction with variance); the callers say what that means for their bits.
    """
    n, d = x.shape
    cov = x.T @ x / max(n - 1, 1)
    vals, vecs = np.linalg.eigh(cov)  # ascending
    top = vecs[:, np.argsort(-vals, kind="stable")[: min(k, d)]]
    rows = np.abs(top).argmax(0)
    top = top * np.where(top[rows, np.arange(top.shape[1])] < 0, -1.0, 1.0)
    out = np.zeros((d, k))
    out[:, : top.shape[1]] = top
    return out


def itq_rotation(v: np.ndarray, iterations: int, initial: np.ndarray) -> np.ndarray:
    """ITQ's rotation R (c, c) of the projected data ``v`` (n, c), from the orthogonal ``initial``.

    Minimises the quantization loss Q(B, R) = ||B − V R||_F² by alternating its two exact minimisers
    ``iterations`` times: B = sgn(V R) with R fixed (a value ≥ 0 gives +1, as the released ``UX(Z>=0) = 1``), then,
    B fixed, the orthogonal Procrustes solution: with the SVD Bᵀ V = S Ω Ŝᵀ, R = Ŝ Sᵀ.
    """
    r = initial
    for _ in range(iterations):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        s, _, s_hat_t = np.linalg.svd(b.T @ v)
        r = (s @ s_hat_t).T  # = Ŝ Sᵀ, written as CCA-ITQ always computed it (its stored runs stay bit-identical)
    return r
