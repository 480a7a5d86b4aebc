"""Parity of the shallow methods (LSH, PCAH, ITQ, SH) with the reference code: each reference below is re-typed from
the cited lines (same arithmetic, our names; numpy / torch float64) and run on fixed arrays; the fits are compared
within float tolerance and the codes of unseen rows bit for bit. The random matrices (LSH's W, ITQ's initial rotation)
are the method's own draws (its ``seed``), handed to the reference, so what is compared is the deterministic rest.

Sources:
- MATLAB: willard-yuan/hashing-baseline-for-image-retrieval @ 822837884bdb5d44e297015d05ad081cea695a56, which ships
  the authors' ITQ.m (Gong, ``Method-CBE/baselines/ITQ.m``), Weiss' trainSH / compressSH (with the PCA handed in),
  the LSH and PCAH train / compress pairs and the centring of ``utils/construct_data.m``;
- Python: CISiPLab/cisip-FIRe @ e8826c4d9ef914c4060a9d9c36b1ccacfa15577f ``functions/loss/{lsh,itq}.py``.

A principal direction's sign is arbitrary (ours: largest-magnitude entry positive, parts/shallow.py); the reference's
PCA is sign-aligned to ours before anything downstream uses it, since a flipped direction flips bits (PCAH) or changes
ITQ's trajectory from a given start.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bitrieve.data.types import Split
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo

N, NQ, D = 300, 50, 24


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, correlated features (like SIFT histograms) with distinct covariance eigenvalues."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=(N + NQ, D)) @ rng.normal(size=(D, D)) * np.linspace(2.0, 0.2, D))
    x = x.astype(np.float32).astype(np.float64)  # the store's float32 values, read in float64 by both sides
    return x[:N], x[N:]


def _fit(name: str, bits: int, x: np.ndarray, **params):
    cls = get_method(name)
    info = DataInfo(feature_dims={"image": D}, input_shapes={"image": (D,)}, num_labels=1, num_train=len(x))
    method = cls(cls.Params(**params), bits, info)
    method.prepare(Split({"image": x.astype(np.float32)}, np.ones((len(x), 1), np.uint8), np.arange(len(x))))
    return method


def _ours(method, x: np.ndarray) -> np.ndarray:
    """Continuous codes in float64 (``project`` of the centred rows; ``encode`` casts them to float32)."""
    z = torch.from_numpy(x) - method.image_mean
    with torch.no_grad():
        return method.project(z).numpy()


def _same_codes(ours: np.ndarray, ref: np.ndarray) -> None:
    """The reference thresholds ``U > 0`` (compress*.m); ours h ≥ 0 -> +1: equal away from exact zeros."""
    assert np.abs(ref).min() > 1e-9
    np.testing.assert_array_equal(ours >= 0, ref > 0)


# --- the references, re-typed -----------------------------------------------------------------------------------
def ref_centre(train, other):
    """construct_data.m:81-83: subtract the sample mean (there over train + test; here the training rows', the only
    rows a fit may see) - the same centring for both sides."""
    mean = train.mean(0)
    return train - mean, other - mean


def ref_pca(x, k, aligned_to):
    """trainPCAH.m:12-13 ``[pc, ~] = eigs(cov(X), npca)``: the top-k eigenvectors of the covariance (cov divides
    by n − 1), columns sign-aligned to ``aligned_to``."""
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    pc = vecs[:, np.argsort(-vals)[:k]]
    return pc * np.sign((pc * aligned_to[:, :k]).sum(0))


def ref_itq(v, n_iter, r):
    """ITQ.m:19-34 from the initial rotation ``r`` (ITQ.m:20-22 draws it: U of svd(randn(bit))); note the loop
    ``for iter=0:n_iter`` runs n_iter + 1 updates."""
    for _ in range(n_iter + 1):
        z = v @ r
        ux = -np.ones(z.shape)
        ux[z >= 0] = 1
        c = ux.T @ v
        ub, _, ua_t = np.linalg.svd(c)
        r = ua_t.T @ ub.T  # R = UA * UB'
    return r


def fire_itq(v, max_iters, r):
    """FIRe functions/loss/itq.py:54-61 (torch; ``torch.svd`` returns V, not Vᵀ, so R = V Uᵀ as ITQ.m)."""
    v, r = torch.from_numpy(v), torch.from_numpy(r)
    for _ in range(max_iters):
        b = (v @ r).sign()
        u, _, vt = torch.svd(b.t() @ v)
        r = vt @ u.t()
    return r.numpy()


def ref_train_sh(x, nbits, pc):
    """trainSH.m:18-51 (``pc``: the PCA of trainSH.m:23-26, npca = min(nbits, Ndim))."""
    x = x @ pc
    eps = np.finfo(np.float64).eps
    mn, mx = x.min(0) - eps, x.max(0) + eps
    r = mx - mn
    max_mode = np.ceil((nbits + 1) * r / r.max()).astype(int)
    n_modes = max_mode.sum() - len(max_mode) + 1
    npca = pc.shape[1]
    modes = np.ones((n_modes, npca))
    m = 0  # MATLAB's m = 1, 0-based
    for i in range(npca):
        modes[m + 1: m + max_mode[i], i] = np.arange(2, max_mode[i] + 1)
        m = m + max_mode[i] - 1
    modes = modes - 1
    omegas = modes * (np.pi / r)
    eig_val = -(omegas ** 2).sum(1)
    ii = np.argsort(-eig_val, kind="stable")  # MATLAB's sort is stable
    return {"pc": pc, "mn": mn, "mx": mx, "modes": modes[ii[1: nbits + 1]]}


def ref_compress_sh(x, p):
    """compressSH.m:18-32: U(:, i) = prod(sin(X .* omega_i + pi/2), 2)."""
    x = x @ p["pc"] - p["mn"]
    omegas = p["modes"] * (np.pi / (p["mx"] - p["mn"]))
    return np.stack([np.sin(x * omegas[i] + np.pi / 2).prod(1) for i in range(len(omegas))], 1)


# --- the tests -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("centre", [True, False])
def test_lsh_is_the_sign_of_the_seeded_gaussian_projection(centre):
    train, query = _data()
    method = _fit("lsh", 16, train, seed=7, centre=centre)
    w = np.random.default_rng(7).standard_normal((D, 16))  # the method's draw (trainLSH.m:13: randn(dim, nbits))
    np.testing.assert_array_equal(method.projection.numpy(), w)
    if centre:  # compressLSH.m:13 U = X * W on the centred data (construct_data.m:82-83)
        _, q = ref_centre(train, query)
        ref = q @ w
    else:  # FIRe lsh.py:22, 34: v = x @ W.t() with W (nbit, d), no centring
        w_fire = w.T  # FIRe's W is (nbit, d)
        ref = query @ w_fire.T
    np.testing.assert_allclose(_ours(method, query), ref, rtol=1e-12, atol=1e-12)
    _same_codes(_ours(method, query), ref)


@pytest.mark.parametrize("bits", [8, 16])
def test_pcah_projects_on_the_top_principal_directions(bits):
    train, query = _data()
    method = _fit("pcah", bits, train)
    x, q = ref_centre(train, query)
    pc = ref_pca(x, bits, method.projection.numpy())
    np.testing.assert_allclose(method.projection.numpy(), pc, atol=1e-10)
    ref = q @ pc  # compressPCAH.m:12
    np.testing.assert_allclose(_ours(method, query), ref, atol=1e-9)
    _same_codes(_ours(method, query), ref)


def test_pcah_beyond_the_dimension_adds_constant_bits_only():
    train, query = _data()
    method = _fit("pcah", D + 8, train)
    codes = _ours(method, query) >= 0
    assert codes[:, D:].all()  # zero directions: h = 0 -> +1 for every item, no effect on any Hamming ranking
    np.testing.assert_array_equal(codes[:, :D], _ours(_fit("pcah", D, train), query) >= 0)


@pytest.mark.parametrize("bits, iterations", [(8, 2), (16, 5), (16, 51), (32, 50)])  # 2, 5: not yet converged
def test_itq_rotation_matches_itq_m_and_fire_from_the_same_start(bits, iterations):
    train, query = _data()
    method = _fit("itq", bits, train, seed=3, iterations=iterations)
    start = np.linalg.svd(np.random.default_rng(3).standard_normal((bits, bits)))[0]  # ITQ.m:20-22
    x, q = ref_centre(train, query)
    pc = np.zeros((D, bits))
    pc[:, :min(bits, D)] = ref_pca(x, min(bits, D), method.projection.numpy())
    np.testing.assert_allclose(method.projection.numpy(), pc, atol=1e-10)
    r_matlab = ref_itq(x @ pc, iterations - 1, start)  # n_iter + 1 updates
    r_fire = fire_itq(x @ pc, iterations, start)
    np.testing.assert_allclose(method.rotation.numpy(), r_matlab, atol=1e-8)
    np.testing.assert_allclose(method.rotation.numpy(), r_fire, atol=1e-8)
    ref = q @ pc @ r_matlab  # compressITQ.m:14-17
    np.testing.assert_allclose(_ours(method, query), ref, atol=1e-8)
    _same_codes(_ours(method, query), ref)


def test_itq_never_increases_the_quantization_loss():
    """Both alternating steps are exact minimisers, so Q(B, R) = ||B - V R||² (Eq. 2) is non-increasing."""
    from bitrieve.parts.shallow import itq_rotation

    train, _ = _data()
    x = train - train.mean(0)
    v = x @ _fit("pcah", 12, train).projection.numpy()
    r = np.linalg.svd(np.random.default_rng(0).standard_normal((12, 12)))[0]
    losses = []
    for _ in range(20):
        vr = v @ r
        losses.append(((np.where(vr >= 0, 1.0, -1.0) - vr) ** 2).sum())
        r = itq_rotation(v, 1, r)
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0]


@pytest.mark.parametrize("bits", [8, 16, 32])  # 32 > D: npca = min(nbits, Ndim), trainSH.m:23
def test_sh_modes_and_eigenfunctions_match_train_and_compress_sh(bits):
    train, query = _data()
    method = _fit("sh", bits, train)
    x, q = ref_centre(train, query)
    npca = min(bits, D)
    p = ref_train_sh(x, bits, ref_pca(x, npca, method.projection.numpy()))
    np.testing.assert_allclose(method.frequencies.numpy(), p["modes"] * (np.pi / (p["mx"] - p["mn"])), rtol=1e-9)
    np.testing.assert_allclose(method.box_low.numpy(), p["mn"], atol=1e-9)
    ref = ref_compress_sh(q, p)
    np.testing.assert_allclose(_ours(method, query), ref, atol=1e-8)
    _same_codes(_ours(method, query), ref)


def test_sh_bits_follow_the_smallest_frequencies_across_directions():
    """Hand-checked enumeration: ranges 4, 2, 1 and 4 bits. ω = kπ/range: direction 0 gives π/4, 2π/4, 3π/4, ...,
    direction 1 π/2, π, ..., direction 2 π, ... The four smallest: π/4 (d0, k1), π/2 (d0, k2 - enumerated first, so
    it precedes the tie d1, k1), then d1 k1, then 3π/4 (d0, k3)."""
    from bitrieve.methods.sh import spectral_modes

    modes = spectral_modes(np.array([4.0, 2.0, 1.0]), 4)
    np.testing.assert_array_equal(modes, [[1, 0, 0], [2, 0, 0], [0, 1, 0], [3, 0, 0]])
    assert math.isclose(float(np.sin(np.pi / 2)), 1.0)  # a zero-frequency factor of the product is exactly 1
