"""VSE++ triplet loss: hardest-negative selection and hand-computed hinge sums."""

import pytest
import torch

from bitrieve.losses.triplet import hardest_negatives, vse_hinge_loss


def test_hardest_negative_selection_ignores_the_positive():
    scores = torch.tensor([[0.9, 0.95, 0.1],
                           [0.2, 0.5, 0.4],
                           [0.3, 0.8, 0.99]])
    cap_idx, im_idx = hardest_negatives(scores)
    # row 0: the positive (0.9) is not a candidate; hardest caption is column 1 (0.95)
    assert cap_idx.tolist() == [1, 2, 1]
    # column 1: positive 0.5 excluded -> rows 0 (0.95) vs 2 (0.8) -> row 0
    assert im_idx.tolist() == [2, 0, 1]


def _unit(v):
    return torch.nn.functional.normalize(torch.tensor(v, dtype=torch.float32), dim=1)


def test_sum_and_max_violation_by_hand():
    im = _unit([[1.0, 0.0], [0.0, 1.0]])
    cap = _unit([[1.0, 0.0], [1.0, 1.0]])
    # scores = [[1, .7071], [0, .7071]]; positives 1 and .7071; margin .2
    s = 2 ** -0.5
    i2t_row0 = max(0.0, 0.2 + s - 1.0)  # image 0 vs caption 1 = 0
    i2t_row1 = max(0.0, 0.2 + 0.0 - s)  # image 1 vs caption 0 = 0
    t2i_col0 = max(0.0, 0.2 + 0.0 - 1.0)  # caption 0 vs image 1 = 0
    t2i_col1 = max(0.0, 0.2 + s - s)  # caption 1 vs image 0 = 0.2
    out = vse_hinge_loss(im, cap, margin=0.2, max_violation=False)
    assert out["i2t"].item() == pytest.approx(i2t_row0 + i2t_row1)
    assert out["t2i"].item() == pytest.approx(t2i_col0 + t2i_col1)
    assert out["loss"].item() == pytest.approx(0.2)


def test_max_violation_keeps_one_negative_per_row_and_column_summed():
    torch.manual_seed(0)
    im = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    cap = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    s = [[float(im[i] @ cap[j]) for j in range(6)] for i in range(6)]
    # Sec. 3, MH written out: for each image the hardest non-matching caption, for each caption the hardest
    # non-matching image; hinges summed over the batch (not averaged)
    expect_i2t = sum(max(0.0, max(0.2 + s[i][j] - s[i][i] for j in range(6) if j != i)) for i in range(6))
    expect_t2i = sum(max(0.0, max(0.2 + s[i][j] - s[j][j] for i in range(6) if i != j)) for j in range(6))
    out = vse_hinge_loss(im, cap, 0.2, max_violation=True)
    assert expect_i2t > 0 and expect_t2i > 0
    assert out["i2t"].item() == pytest.approx(expect_i2t, rel=1e-12)
    assert out["t2i"].item() == pytest.approx(expect_t2i, rel=1e-12)
    # SH: every violating negative, summed
    expect_sh = sum(max(0.0, 0.2 + s[i][j] - s[i][i]) + max(0.0, 0.2 + s[i][j] - s[j][j])
                    for i in range(6) for j in range(6) if i != j)
    assert vse_hinge_loss(im, cap, 0.2, max_violation=False)["loss"].item() == pytest.approx(expect_sh, rel=1e-12)


def test_gradient_reaches_only_the_hardest_negative():
    im = _unit([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]).requires_grad_()
    cap = _unit([[0.9, 0.1], [0.1, 0.9], [0.7, 0.7]]).requires_grad_()
    out = vse_hinge_loss(im, cap, 0.2, max_violation=True)
    out["i2t"].backward()
    scores = (im @ cap.T).detach()
    cap_idx, _ = hardest_negatives(scores)
    # captions that are nobody's hardest negative and nobody's violated positive get no gradient from i2t
    pos_active = (0.2 + scores[torch.arange(3), cap_idx] - scores.diagonal()) > 0
    touched = set(cap_idx[pos_active].tolist()) | set(torch.arange(3)[pos_active].tolist())
    for j in range(3):
        assert (cap.grad[j].abs().sum() > 0) == (j in touched)


def test_shape_errors():
    with pytest.raises(ValueError, match="both be"):
        vse_hinge_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="square"):
        hardest_negatives(torch.zeros(2, 3))
