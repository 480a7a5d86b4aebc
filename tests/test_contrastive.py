"""Contrastive losses against hand-computed values and slow reference loops."""

import math

import pytest
import torch

from bitrieve.losses.contrastive import (balance_weights, balanced_contrastive, contrastive, info_nce, nt_xent)

E = math.e


def test_balance_weights_n128():
    w_pos, w_neg = balance_weights(128)
    assert w_pos == 128.0
    assert w_neg == pytest.approx(128 / 127, rel=1e-15)


def test_balanced_n3_by_hand():
    # cos(a_i, b_j) = [[1,0,0],[0,1,1],[1,0,0]]; tau = 0.5 -> s = 2 cos; N=3: w_pos = 9/3 = 3, w_neg = 9/6 = 1.5
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    # row 1: -3 log(e^2 / (e^2 + 1.5 (1 + 1)))         = 3 log(1 + 3 e^-2)
    # row 2: -3 log(e^2 / (e^2 + 1.5 (1 + e^2)))       = 3 log(2.5 + 1.5 e^-2)
    # row 3: -3 log(1 / (1 + 1.5 (e^2 + 1)))           = 3 log(2.5 + 1.5 e^2)
    rows = [3 * math.log(1 + 3 * E**-2), 3 * math.log(2.5 + 1.5 * E**-2), 3 * math.log(2.5 + 1.5 * E**2)]
    got = balanced_contrastive(a, b, temperature=0.5, reduction="none")
    assert got.tolist() == pytest.approx(rows, rel=1e-12)
    assert balanced_contrastive(a, b).item() == pytest.approx(sum(rows) / 3, rel=1e-12)
    # symmetric adds the text->image rows (columns of the same matrix), mean over 2N
    cols = [3 * math.log((E**2 + 1.5 * (1 + E**2)) / E**2),  # col 1: s11 = 2, negatives s21 = 0, s31 = 2
            3 * math.log((E**2 + 1.5 * 2) / E**2),           # col 2: s22 = 2, negatives 0, 0
            3 * math.log((1 + 1.5 * (1 + E**2)) / 1)]        # col 3: s33 = 0, negatives s13 = 0, s23 = 2
    sym = balanced_contrastive(a, b, temperature=0.5, symmetric=True)
    assert sym.item() == pytest.approx((sum(rows) + sum(cols)) / 6, rel=1e-12)


def _balanced_loop(a, b, tau):
    a = torch.nn.functional.normalize(a, dim=1)
    b = torch.nn.functional.normalize(b, dim=1)
    n = a.shape[0]
    s_total, s1 = n * n, n
    w_pos, w_neg = s_total / s1, s_total / (s_total - s1)
    out = []
    for i in range(n):
        sii = math.exp(float(a[i] @ b[i]) / tau)
        neg = sum(math.exp(float(a[i] @ b[j]) / tau) for j in range(n) if j != i)
        out.append(-w_pos * math.log(sii / (sii + w_neg * neg)))
    return sum(out) / n


def test_balanced_matches_loop_at_n128():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(128, 16, generator=g, dtype=torch.float64), torch.randn(128, 16, generator=g, dtype=torch.float64)
    assert balanced_contrastive(a, b, 0.5).item() == pytest.approx(_balanced_loop(a, b, 0.5), rel=1e-10)
    # the scale claim in the docs: loss = N x (one-directional cross-modal InfoNCE with w_neg-weighted negatives);
    # with w_neg -> 1 this is N x info_nce; at N = 128 the two differ by well under 1 %
    ratio = balanced_contrastive(a, b, 0.5).item() / (128 * info_nce(a, b, 0.5, symmetric=False).item())
    assert 1.0 < ratio < 1.01


def test_nt_xent_by_hand_and_against_released_formula():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # z = [e1, e2, e1, e2]; anchor e1: partner sim 2 (tau 0.5), two negatives with sim 0 -> log(e^2 + 2) - 2
    assert nt_xent(a, a.clone(), 0.5).item() == pytest.approx(math.log(1 + 2 * E**-2), rel=1e-12)
    # UCMFH metric.py formula written out: denominator over all k != i of exp(sim/tau), mean over 2N
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    z = torch.nn.functional.normalize(torch.cat([x, y]), dim=1)
    sim = z @ z.t()
    n = 5
    total = 0.0
    for i in range(2 * n):
        pos = float(sim[i, (i + n) % (2 * n)])
        den = sum(math.exp(float(sim[i, k]) / 0.5) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(pos / 0.5) / den)
    assert nt_xent(x, y, 0.5).item() == pytest.approx(total / (2 * n), rel=1e-10)


def test_info_nce_by_hand_and_dispatch():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert info_nce(a, a.clone(), 0.5).item() == pytest.approx(math.log(1 + E**-2), rel=1e-12)
    assert contrastive("ntxent", a, a.clone()).item() == pytest.approx(nt_xent(a, a.clone()).item())
    assert contrastive("balanced", a, a.clone()).item() == pytest.approx(balanced_contrastive(a, a.clone()).item())
    with pytest.raises(ValueError, match="unknown contrastive loss"):
        contrastive("hinge", a, a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(a, torch.zeros(3, 2))


def _info_nce_loop(a, b, tau, symmetric):
    """Cross-modal InfoNCE written out: row i of cos(a, b)/tau against target i (and column i if symmetric)."""
    a = torch.nn.functional.normalize(a, dim=1)
    b = torch.nn.functional.normalize(b, dim=1)
    n = a.shape[0]
    s = [[float(a[i] @ b[j]) / tau for j in range(n)] for i in range(n)]
    rows = [-s[i][i] + math.log(sum(math.exp(s[i][j]) for j in range(n))) for i in range(n)]
    cols = [-s[i][i] + math.log(sum(math.exp(s[j][i]) for j in range(n))) for i in range(n)]
    return rows + cols if symmetric else rows


@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_matches_a_loop_on_random_pairs(symmetric):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    per = _info_nce_loop(a, b, 0.3, symmetric)
    assert info_nce(a, b, 0.3, symmetric=symmetric, reduction="none").tolist() == pytest.approx(per, rel=1e-12)
    # mean over the N (one direction) or 2N (both) anchors
    assert info_nce(a, b, 0.3, symmetric=symmetric).item() == pytest.approx(sum(per) / len(per), rel=1e-12)
    assert contrastive("infonce", a, b, 0.3, symmetric).item() == pytest.approx(sum(per) / len(per), rel=1e-12)


def test_balanced_gradient_pulls_positive_pairs_together():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(8, 4, generator=g, requires_grad=True)
    b = torch.randn(8, 4, generator=g)
    opt = torch.optim.SGD([a], lr=0.01)
    before = torch.nn.functional.cosine_similarity(a, b).mean().item()
    for _ in range(50):
        opt.zero_grad()
        balanced_contrastive(a, b).backward()
        opt.step()
    assert torch.nn.functional.cosine_similarity(a, b).mean().item() > before + 0.2
