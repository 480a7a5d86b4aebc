"""losses/reconstruction.py and AGCH's objective L = alpha L1 + delta L2 + L3 on small hand-computed cases."""

import pytest
import torch

from bitrieve.losses.reconstruction import code_alignment, code_inner_products, similarity_reconstruction
from bitrieve.methods.agch import AGCH, AGCHParams
from bitrieve.methods.base import DataInfo


def test_similarity_reconstruction_hand_computed():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised rows: e1, e2 -> products = I
    s = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    per = similarity_reconstruction(s, a, reduction="none")
    assert torch.allclose(per, torch.tensor([[0.0, 0.25], [0.25, 0.0]]))
    assert float(similarity_reconstruction(s, a, reduction="sum")) == pytest.approx(0.5)
    assert float(similarity_reconstruction(s, a, reduction="mean")) == pytest.approx(0.125)
    # cross products between two code sets
    b = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    prod = code_inner_products(a, b)
    r = 2 ** -0.5
    assert torch.allclose(prod, torch.tensor([[r, -1.0], [r, 0.0]]), atol=1e-6)
    assert float(similarity_reconstruction(s, a, b, reduction="sum")) == pytest.approx(
        (1 - r) ** 2 + 1.5 ** 2 + (0.5 - r) ** 2 + 1.0, rel=1e-5)


def test_code_alignment_hand_computed():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    assert torch.allclose(code_alignment(a, b, reduction="none"), torch.tensor([[0.16, 0.64]]), atol=1e-6)
    assert float(code_alignment(a, b, reduction="sum")) == pytest.approx(2 - 2 * 0.6)
    assert float(code_alignment(a, b, normalize=False, reduction="sum")) == pytest.approx(4 + 16)
    with pytest.raises(ValueError, match="shapes"):
        code_alignment(a, torch.ones(2, 2))
    with pytest.raises(ValueError, match="reduction"):
        code_alignment(a, b, reduction="avg")
    # pairs: the sum over the row count squared (1 row here), whatever the code width
    assert float(code_alignment(a, b, reduction="pairs")) == pytest.approx(2 - 2 * 0.6)
    assert float(code_alignment(torch.cat([a, a]), torch.cat([b, b]), reduction="pairs")) == pytest.approx(
        2 * (2 - 2 * 0.6) / 4)


def _model(**kw):
    info = DataInfo({"image": 6, "text": 4}, {"image": (6,), "text": (4,)}, 3, 10)
    return AGCH(AGCHParams(hidden=8, gcn_dims=[8, 8], **kw), 2, info)


def test_agch_objective_on_hand_codes():
    # S and codes chosen so each term is known: v = t = gv = gt = e1/e2 rows (products = I), h = all-e1 rows
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    codes = {"v": e, "t": e, "gv": e, "gt": e, "h": h}
    m = _model(alpha=0.4, beta=0.3, lam=5.0, delta=0.01, reduction="sum")
    t = m.loss_terms(s, codes)
    for k in ("rec_v", "rec_t", "rec_gv", "rec_gt", "align_gv_v", "align_gt_t"):
        assert float(t[k]) == pytest.approx(0.0, abs=1e-7), k
    # h h^T = all ones: (0 - 1)^2 twice off the diagonal
    assert float(t["rec_h"]) == pytest.approx(2.0)
    # e h^T = [[1, 1], [0, 0]]: errors (0, 1, 0, 1) -> 2, same for t
    assert float(t["cross_rec_vh"]) == pytest.approx(2.0) and float(t["cross_rec_th"]) == pytest.approx(2.0)
    # row 2 differs: (0 - 1)^2 + (1 - 0)^2 = 2
    assert float(t["align_v_h"]) == pytest.approx(2.0) and float(t["align_t_h"]) == pytest.approx(2.0)
    assert float(t["L1"]) == pytest.approx(2.0) and float(t["L2"]) == pytest.approx(0.0, abs=1e-7)
    assert float(t["L3"]) == pytest.approx(0.3 * 4 + 5.0 * 4)
    assert float(t["loss"]) == pytest.approx(0.4 * 2.0 + 0.01 * 0.0 + 0.3 * 4 + 5.0 * 4)
    # mean reduction divides each term by its element count (4)
    tm = _model(alpha=0.4, beta=0.3, lam=5.0, delta=0.01, reduction="mean").loss_terms(s, codes)
    assert float(tm["loss"]) == pytest.approx(float(t["loss"]) / 4)


def _eq16_retyped(s, codes, alpha, beta, lam, delta):
    """Eq. 16 of the paper re-typed with explicit loops: pair sums over i, j (m²), item sums over i (m), codes
    L2-normalised ("the binary representations ... are all normalized")."""
    m = s.shape[0]
    b = {k: [row / row.norm() for row in v] for k, v in codes.items()}

    def rec(x, y):
        return sum((float(s[i, j]) - float(b[x][i] @ b[y][j])) ** 2 for i in range(m) for j in range(m))

    def ali(x, y):
        return sum(float(((b[x][i] - b[y][i]) ** 2).sum()) for i in range(m))

    return (alpha * (rec("v", "v") + rec("t", "t") + rec("h", "h"))
            + delta * (rec("gv", "gv") + rec("gt", "gt"))
            + beta * (rec("v", "h") + rec("t", "h"))
            + delta * (ali("gv", "v") + ali("gt", "t"))
            + lam * (ali("v", "h") + ali("t", "h")))


def test_agch_pairs_reduction_is_eq16_over_one_common_divisor():
    # hand-computed case, m = 2 pairs, c = 4 bits (c != m, so "mean" and "pairs" differ):
    # v = t = gv = gt = (e1, e2): every reconstruction of S = I is exact and the GCN alignments are 0;
    # h = (e1, e1): rec_h = 2 (two off-diagonal 1s), cross_rec_{v,t}h = 2 each, align_{v,t}_h = 2 each (row 2)
    s = torch.eye(2)
    e = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    h = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    codes = {"v": e, "t": e, "gv": e, "gt": e, "h": h}
    hp = dict(alpha=0.4, beta=0.3, lam=5.0, delta=0.01)
    # Eq. 16 printed (sum): 0.4 * 2 + 0.3 * (2 + 2) + 5 * (2 + 2) = 22
    assert float(_model(reduction="sum", **hp).loss_terms(s, codes)["loss"]) == pytest.approx(22.0)
    # pairs (default): every term / m^2 = 22 / 4
    assert AGCHParams().reduction == "pairs"
    assert float(_model(**hp).loss_terms(s, codes)["loss"]) == pytest.approx(22.0 / 4)
    # mean: reconstruction terms / m^2 = 4, alignment terms / (m c) = 8 -> lambda weighted by m / c = 1/2
    assert float(_model(reduction="mean", **hp).loss_terms(s, codes)["loss"]) == pytest.approx(
        (0.4 * 2 + 0.3 * 4) / 4 + 5.0 * 4 / 8)


@pytest.mark.parametrize("m, c", [(3, 5), (5, 2)])
def test_agch_loss_matches_retyped_eq16(m, c):
    g = torch.Generator().manual_seed(m * 10 + c)
    s = torch.rand(m, m, generator=g) * 2 - 1
    codes = {k: torch.randn(m, c, generator=g) for k in ("v", "t", "h", "gv", "gt")}
    hp = dict(alpha=0.4, beta=0.3, lam=5.0, delta=0.01)
    ref = _eq16_retyped(s, codes, **hp)
    assert float(_model(reduction="sum", **hp).loss_terms(s, codes)["loss"]) == pytest.approx(ref, rel=1e-5)
    assert float(_model(reduction="pairs", **hp).loss_terms(s, codes)["loss"]) == pytest.approx(ref / m**2, rel=1e-5)


def test_agch_delta_weights_l2():
    s = torch.eye(2)
    e = torch.eye(2)
    g = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # GCN codes collapsed: rec 2 each, alignment 2 each
    codes = {"v": e, "t": e, "h": e, "gv": g, "gt": g}
    t = _model(delta=0.5, reduction="sum").loss_terms(s, codes)
    assert float(t["L2"]) == pytest.approx(8.0)
    assert float(t["loss"]) == pytest.approx(0.5 * 8.0)


def test_ablation_no_fusion_aligns_modalities_directly():
    s = torch.eye(2)
    v = torch.eye(2)
    t_codes = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    m = _model(use_fusion=False, use_gcn=False, beta=1.0, lam=1.0, reduction="sum")
    t = m.loss_terms(s, {"v": v, "t": t_codes})
    assert "rec_gv" not in t and float(t["L2"]) == 0.0
    assert float(t["align_v_t"]) == pytest.approx(4.0) and float(t["cross_rec_vt"]) == pytest.approx(4.0)
