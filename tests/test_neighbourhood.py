"""DJSRH / JDSH / DGCPN similarity builders against small hand-computed examples.

The builders compute in float32 (parts/similarity.py casts), hence rel=1e-6.
"""

import math

import pytest
import torch

from bitrieve.parts.neighbourhood import (dgcpn_similarity, djsrh_joint_similarity, jdsh_joint_similarity,
                                          released_neighbour_distribution)

IMAGE = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cos_I = I -> S_I = 2I - 1 = [[1,-1],[-1,1]]
TEXT = torch.tensor([[1.0, 0.0], [2.0, 0.0]])   # cos_T = 1 -> S_T = ones


def test_djsrh_by_hand():
    # beta 0.5: S~ = 0.5 [[1,-1],[-1,1]] + 0.5 ones = I; S~S~^T / 2 = I/2; (1-0.4) I + 0.4 I/2 = 0.8 I; x mu 1.5
    s = djsrh_joint_similarity(IMAGE, TEXT, beta=0.5, eta=0.4, mu=1.5)
    assert s.tolist() == [[pytest.approx(1.2), 0.0], [0.0, pytest.approx(1.2)]]
    # beta 1: only the image term; eta 0: no neighbourhood term; mu 1 -> S_I
    assert djsrh_joint_similarity(IMAGE, TEXT, beta=1.0, eta=0.0, mu=1.0).tolist() == [[1.0, -1.0], [-1.0, 1.0]]


def test_jdsh_by_hand():
    # S_I rows (1,-1)/sqrt2, (-1,1)/sqrt2; S_T rows (1,1)/sqrt2 -> S_H = 0.
    # s = 0.5 S_I + 0.1 S_T + 0.4 * 0 = [[0.6, -0.4], [-0.4, 0.6]]
    kw = dict(alpha=0.5, beta=0.1, lamb=0.4, mu=1.0, left=-0.3, right=0.5, l1=0.1, l2=0.2, s_min=-0.5, s_max=0.7)
    s = jdsh_joint_similarity(IMAGE, TEXT, **kw)
    hi = (1 + 0.2 * math.exp(0.6 - 0.7)) * 0.6     # 0.6 > right: confident similar, enlarged
    lo = (1 + 0.1 * math.exp(-(-0.4 + 0.5))) * -0.4  # -0.4 < left: confident dissimilar, enlarged
    assert s.flatten().tolist() == pytest.approx([hi, lo, lo, hi], rel=1e-6)
    # values between the thresholds are untouched, and mu scales everything
    kw.update(left=-1.0, right=1.0, mu=2.0)
    assert jdsh_joint_similarity(IMAGE, TEXT, **kw).flatten().tolist() == pytest.approx([1.2, -0.8, -0.8, 1.2])


def test_released_neighbour_distribution_by_hand():
    sim = torch.tensor([[1.0, 0.9, 0.3, 0.1],
                        [0.9, 1.0, 0.2, 0.4],
                        [0.3, 0.2, 1.0, 0.5],
                        [0.1, 0.4, 0.5, 1.0]])
    # knn_number 1: each row drops its smallest entry and its maximum (itself); 4 - 1 - 1 = 2 neighbours remain
    p = released_neighbour_distribution(sim, 1)
    assert p[0].tolist() == pytest.approx([0.0, 0.9 / 1.2, 0.3 / 1.2, 0.0])
    assert p[1].tolist() == pytest.approx([0.9 / 1.3, 0.0, 0.0, 0.4 / 1.3])
    assert p[2].tolist() == pytest.approx([0.3 / 0.8, 0.0, 0.0, 0.5 / 0.8])
    assert p[3].tolist() == pytest.approx([0.0, 0.4 / 0.9, 0.5 / 0.9, 0.0])
    # knn_number 0 drops only the maximum
    assert released_neighbour_distribution(sim, 0)[0].tolist() == pytest.approx([0.0, 0.9 / 1.3, 0.3 / 1.3, 0.1 / 1.3])
    with pytest.raises(ValueError, match="knn_number must be in"):
        released_neighbour_distribution(sim, 3)


def test_released_rule_drops_a_duplicate_that_ties_with_the_item_itself():
    # row 0: items 0 and 1 tie at 1.0; the sort puts the later column last, so column 1 (the duplicate) is dropped
    # as "the maximum" and the item keeps itself as a neighbour - what train_div.py:94-95 does on such rows
    sim = torch.tensor([[1.0, 1.0, 0.5, 0.2],
                        [1.0, 1.0, 0.5, 0.2],
                        [0.5, 0.5, 1.0, 0.3],
                        [0.2, 0.2, 0.3, 1.0]])
    assert released_neighbour_distribution(sim, 1)[0].tolist() == pytest.approx([1.0 / 1.5, 0.0, 0.5 / 1.5, 0.0])


def test_dgcpn_by_hand():
    # items 0,1 = e1 and items 2,3 = e2 (both modalities): cos = block diagonal of ones.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    cos = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    # knn_number 2 keeps one neighbour per row. Rows 0 and 1 sort (stable) to columns 2, 3, 0, 1: columns 2, 3
    # (smallest) and 1 (last = the maximum) are dropped, so both keep column 0; rows 2 and 3 keep column 2.
    # P = [e0, e0, e2, e2] and P Pᵀ = cos (twins share their one neighbour).
    s = dgcpn_similarity(x, x, a1=0.3, a2=0.5, knn_number=2, scale=2.0)
    expected = 2 * (0.5 * cos + 0.5 * 2.0 * cos) - 1
    assert torch.allclose(s, expected, atol=1e-6)
    # a2 = 0: the coexistent similarity alone, 2 S_pair - 1 with S_pair = a1 cos_T + (1 - a1) cos_I
    assert torch.allclose(dgcpn_similarity(x, x, a1=0.3, a2=0.0, knn_number=2, scale=2.0), 2 * cos - 1, atol=1e-6)
