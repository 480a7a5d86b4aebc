"""Recall@K (VSE++ bookkeeping) against brute force, for real-valued and binary retrieval and both tie policies."""

import itertools

import numpy as np
import pytest

from bitrieve.eval import cross_modal_recall, recall_at_k


def ref_recall(scores, qg, dg, ks):
    """Stable ranking by descending score (ties by database index); hit if any same-group item is in the top K."""
    hits = np.zeros(len(ks))
    for i in range(scores.shape[0]):
        order = np.argsort(-scores[i], kind="stable")
        ranked = np.asarray(dg)[order]
        for t, k in enumerate(ks):
            hits[t] += np.any(ranked[:k] == qg[i])
    return {f"r@{k}": 100 * hits[t] / scores.shape[0] for t, k in enumerate(ks)}


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_real_valued_five_captions(metric):
    rng = np.random.default_rng(0)
    n_img, dim = 40, 16
    img = rng.standard_normal((n_img, dim))
    txt = np.repeat(img, 5, axis=0) + 1.5 * rng.standard_normal((5 * n_img, dim))
    ig, tg = np.arange(n_img), np.repeat(np.arange(n_img), 5)
    ks = (1, 5, 10)
    def scores(a, b):
        if metric == "cosine":
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return a.astype(np.float32) @ b.astype(np.float32).T
    got = recall_at_k(img, txt, ig, tg, ks=ks, metric=metric)
    want = ref_recall(scores(img, txt), ig, tg, ks)
    assert got == pytest.approx(want, abs=1e-9)
    both = cross_modal_recall(img, txt, ks=ks, metric=metric)  # groups inferred: text i -> image i // 5
    assert both["i2t"] == pytest.approx(want, abs=1e-9)
    assert both["t2i"] == pytest.approx(ref_recall(scores(txt, img), tg, ig, ks), abs=1e-9)
    assert both["rsum"] == pytest.approx(sum(both["i2t"].values()) + sum(both["t2i"].values()))
    assert 0 < both["i2t"]["r@1"] < 100


def test_binary_stable_and_tie_averaged():
    rng = np.random.default_rng(1)
    n, bits = 30, 4  # 4-bit codes: many ties
    q = rng.integers(0, 2, (n, bits))
    d = q ^ (rng.random((n, bits)) < 0.2)
    ks = (1, 3, 10)
    ham = -(q[:, None, :] != d[None, :, :]).sum(axis=2).astype(float)
    got = recall_at_k(q, d, ks=ks, binary=True)
    assert got == pytest.approx(ref_recall(ham, np.arange(n), np.arange(n), ks), abs=1e-9)
    # tie-averaged: exhaustive over orders of a tiny case
    qs, ds = q[:3], d[:6]
    qg, dg = np.array([0, 1, 2]), np.array([0, 1, 2, 0, 1, 2])
    ham = -(qs[:, None, :] != ds[None, :, :]).sum(axis=2).astype(float)
    acc = np.zeros(3)
    perms = list(itertools.permutations(range(6)))
    for perm in perms:
        perm = np.array(perm)
        r = ref_recall(ham[:, perm], qg, dg[perm], ks)
        acc += [r[f"r@{k}"] for k in ks]
    got = recall_at_k(qs, ds, qg, dg, ks=ks, binary=True, tie="tie-averaged")
    np.testing.assert_allclose([got[f"r@{k}"] for k in ks], acc / len(perms), atol=1e-9)
