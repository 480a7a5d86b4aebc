"""Quantization penalties of GreedyHash and DSH, by hand."""

import pytest
import torch

from bitrieve.losses.quantization import dsh_abs_regularizer, greedy_cubic_penalty


def test_greedy_cubic_penalty_by_hand():
    h = torch.tensor([[0.5, -2.0], [1.0, 0.0]])
    # | |h| - 1 |^3 = 0.125, 1, 0, 1 -> mean 2.125 / 4
    assert greedy_cubic_penalty(h).item() == pytest.approx(2.125 / 4)


def test_penalties_vanish_on_binary_codes():
    b = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
    assert greedy_cubic_penalty(b).item() == 0.0
    assert dsh_abs_regularizer(b).item() == 0.0


def test_dsh_regularizer_sums_bits_and_averages_samples():
    b = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 1.0, 1.0]])
    assert dsh_abs_regularizer(b).item() == pytest.approx((4.0 + 1.0) / 2)


def test_cubic_penalty_gradient_pushes_towards_plus_minus_one():
    h = torch.tensor([[0.5, 1.5, -0.5, -1.5]], requires_grad=True)
    greedy_cubic_penalty(h).backward()
    # gradient descent moves 0.5 up, 1.5 down, -0.5 down, -1.5 up
    assert (torch.sign(-h.grad) == torch.tensor([[1.0, -1.0, -1.0, 1.0]])).all()


def test_non_2d_input_is_an_error():
    with pytest.raises(ValueError, match="bits"):
        greedy_cubic_penalty(torch.zeros(3))
