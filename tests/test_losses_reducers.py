"""losses/reducers.py: every named reduction on hand-computed cases."""

import pytest
import torch

from bitrieve.losses import reducers

GRID = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])  # sum 45, n = 3


def test_reductions_of_a_3x3_pair_matrix_by_hand():
    assert reducers.total(GRID).item() == 45.0
    assert reducers.mean(GRID).item() == 5.0  # 45 / 9 entries
    assert reducers.mean_of_row_sums(GRID).item() == 15.0  # rows sum to 6, 15, 24 -> mean 15
    assert reducers.per_ordered_pair(GRID).item() == 7.5  # 45 / (3 * 2): DSH's Caffe alpha
    assert reducers.per_squared_batch(GRID).item() == 5.0  # 45 / 3^2


def test_pairs_divides_by_rows_squared_whatever_the_width():
    codes = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # m = 2 items, c = 3 bits, sum 21
    assert reducers.per_squared_batch(codes).item() == 21 / 4  # not the mean 21 / 6
    assert reducers.mean(codes).item() == 21 / 6
    assert reducers.mean_of_row_sums(codes).item() == 21 / 2


def test_reduce_by_name():
    assert reducers.reduce(GRID, "none") is GRID
    assert [reducers.reduce(GRID, r).item() for r in ("sum", "mean", "pairs")] == [45.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        reducers.reduce(GRID, "avg")  # type: ignore[arg-type]


def test_per_ordered_pair_needs_a_square_matrix_of_two_or_more_rows():
    with pytest.raises(ValueError, match=r"\(n, n\) pair matrix"):
        reducers.per_ordered_pair(torch.ones(2, 3))
    with pytest.raises(ValueError, match="n >= 2"):
        reducers.per_ordered_pair(torch.ones(1, 1))
