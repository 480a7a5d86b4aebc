"""parts/similarity.py: AGCH's aggregated similarity on hand-computed cases (Zhang et al., TMM 2022, Sec. III-C,
Eqs. 8-12)."""

import math

import pytest
import torch

from bitrieve.parts.similarity import aggregated_similarity, cosine_similarity


def _three_pairs():
    # image: e1, e2, (e1 + e2)/sqrt2 ; text: e1, e1, e2
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [5.0, 0.0], [0.0, 3.0]])  # scale must not matter (L2-normalised first)
    return image, text


def test_aggregated_similarity_hand_computed_3x3():
    image, text = _three_pairs()
    s, parts = aggregated_similarity(image, text, gamma_v=1.0, gamma_t=1.0, rho=4.0, renormalize=True,
                                     return_parts=True)
    # Z_i = [v_i, t_i] / sqrt2 (equal weights, re-normalised): C_ij = (cos_v + cos_t) / 2
    c12, c13 = (0.0 + 1.0) / 2, (math.sqrt(0.5) + 0.0) / 2
    # unit vectors: ||z_i - z_j|| = sqrt(2 - 2 C_ij)
    d12, d13 = math.exp(-math.sqrt(2 - 2 * c12) / 4), math.exp(-math.sqrt(2 - 2 * c13) / 4)
    expected_raw = torch.tensor([[1.0, c12 * d12, c13 * d13],
                                 [c12 * d12, 1.0, c13 * d13],
                                 [c13 * d13, c13 * d13, 1.0]])
    assert torch.allclose(parts["C"], torch.tensor([[1, c12, c13], [c12, 1, c13], [c13, c13, 1]]), atol=1e-6)
    assert torch.allclose(parts["S_raw"], expected_raw, atol=1e-6)
    assert torch.allclose(s, 2 * expected_raw - 1, atol=1e-6)
    assert abs(float(s[0, 1]) - (2 * 0.5 * math.exp(-0.25) - 1)) < 1e-6  # = -0.2212


def test_paper_worked_example_plain_euclidean_distance():
    # two unit image vectors with cosine 0.95, identical text weighted 0: paper: C = 0.95, D = 0.92, S = 0.874
    image = torch.tensor([[1.0, 0.0], [0.95, math.sqrt(1 - 0.95 ** 2)]])
    text = torch.ones(2, 3)
    _, parts = aggregated_similarity(image, text, gamma_v=1.0, gamma_t=0.0, rho=4.0, return_parts=True)
    c, d, s = float(parts["C"][0, 1]), float(parts["D"][0, 1]), float(parts["S_raw"][0, 1])
    distance = math.sqrt(2 - 2 * 0.95)  # two unit vectors with cosine 0.95
    assert c == pytest.approx(0.95, abs=1e-6)
    assert d == pytest.approx(math.exp(-distance / 4), abs=1e-6)  # Eq. 12 with the plain norm
    assert s == pytest.approx(0.95 * math.exp(-distance / 4), abs=1e-6)  # Eq. 11
    # the paper prints D = 0.92 and S = 0.874 = 0.95 x 0.92 (S from the rounded D): both fit the plain norm
    assert round(d, 2) == 0.92 and round(c * round(d, 2), 3) == 0.874
    # Eq. 12 as printed (root over the norm) gives a D that does not round to the example's 0.92
    _, printed = aggregated_similarity(image, text, gamma_v=1.0, gamma_t=0.0, rho=4.0, distance_form="sqrt_norm",
                                       return_parts=True)
    d_printed = float(printed["D"][0, 1])
    assert d_printed == pytest.approx(math.exp(-math.sqrt(distance) / 4), abs=1e-6)
    assert round(d_printed, 2) == 0.87  # not the example's 0.92


def test_paper_default_keeps_gamma_squared_diagonal():
    # Eq. 8-9 without re-normalisation (the default): C_ii = gamma_v^2 + gamma_t^2 = 1.64 for Wiki's (1, 0.8)
    image, text = _three_pairs()
    _, p = aggregated_similarity(image, text, 1.0, 0.8, 4.0, return_parts=True)
    assert torch.allclose(torch.diagonal(p["C"]), torch.full((3,), 1.64), atol=1e-6)
    # pair (0, 1): image cosine 0, text cosine 1 -> C = 0.64; distance^2 = 1 * (2 - 0) + 0.64 * (2 - 2) = 2
    assert abs(float(p["C"][0, 1]) - 0.64) < 1e-6
    assert abs(float(p["D"][0, 1]) - math.exp(-math.sqrt(2.0) / 4)) < 1e-6


def test_gamma_weights_and_renormalisation_switch():
    image, text = _three_pairs()
    gv, gt = 2.0, 0.3
    _, p = aggregated_similarity(image, text, gv, gt, 4.0, renormalize=True, return_parts=True)
    cos_v01, cos_t01 = 0.0, 1.0
    assert abs(float(p["C"][0, 1]) - (gv**2 * cos_v01 + gt**2 * cos_t01) / (gv**2 + gt**2)) < 1e-6
    _, raw = aggregated_similarity(image, text, gv, gt, 4.0, renormalize=False, return_parts=True)
    assert abs(float(raw["C"][0, 0]) - (gv**2 + gt**2)) < 1e-5  # C can exceed 1 without re-normalisation
    _, lin = aggregated_similarity(image, text, gv, gt, 4.0, gamma_mode="similarity", renormalize=True,
                                   return_parts=True)
    assert abs(float(lin["C"][0, 1]) - (gv * cos_v01 + gt * cos_t01) / (gv + gt)) < 1e-6


def test_ablation_metrics():
    image, text = _three_pairs()
    s_agg, p = aggregated_similarity(image, text, 1.0, 1.0, 4.0, return_parts=True)
    assert torch.allclose(aggregated_similarity(image, text, 1.0, 1.0, 4.0, metric="cosine"), 2 * p["C"] - 1)
    assert torch.allclose(aggregated_similarity(image, text, 1.0, 1.0, 4.0, metric="euclidean"), 2 * p["D"] - 1)
    hybrid = aggregated_similarity(image, text, 1.0, 1.0, 4.0, metric="cosine_text_euclidean_image", mix=0.25,
                                   rescale=False)
    # AGCH-3 (Sec. IV-D.4): S = gamma C_text + (1 - gamma) D_image; pair (0, 1): text cosine 1, image distance sqrt2
    assert abs(float(hybrid[0, 1]) - (0.25 * 1.0 + 0.75 * math.exp(-math.sqrt(2) / 4))) < 1e-6
    # pair (0, 2): text cosine 0, image cosine 1/sqrt2 -> distance sqrt(2 - sqrt2)
    assert abs(float(hybrid[0, 2]) - 0.75 * math.exp(-math.sqrt(2 - math.sqrt(2)) / 4)) < 1e-6
    assert torch.allclose(torch.diagonal(s_agg), torch.full((3,), 3.0))  # 2 (1 + 1) - 1: C_ii = 2, D_ii = 1


def test_cosine_similarity_and_errors():
    x = torch.tensor([[3.0, 4.0], [4.0, -3.0]])
    assert torch.allclose(cosine_similarity(x), torch.eye(2), atol=1e-6)
    with pytest.raises(ValueError, match="rows"):
        aggregated_similarity(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="rho"):
        aggregated_similarity(torch.ones(3, 2), torch.ones(3, 2), rho=0.0)
