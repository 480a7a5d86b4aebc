"""DSH pairwise loss: a hand-computed 3-sample batch, and agreement with the official Caffe layer's gradient."""

import pytest
import torch

from bitrieve.losses.pairwise import dsh_pair_loss
from bitrieve.losses.quantization import dsh_abs_regularizer
from bitrieve.parts.distances import label_similarity


def _batch():
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.uint8)  # 0 and 1 similar, 2 differs
    return b, labels


def test_three_sample_batch_by_hand():
    b, labels = _batch()
    # d^2: (0,1) = 2 similar -> 2; (0,2) = 1 dissimilar -> max(4 - 1, 0) = 3; (1,2) = 1 dissimilar -> 3
    # paper's 1/2, Caffe's / n(n-1) = 6: similar 2/2/6, dissimilar 6/2/6
    out = dsh_pair_loss(b, labels, margin=4.0)
    assert out["similar"].item() == pytest.approx(1 / 6)
    assert out["dissimilar"].item() == pytest.approx(1 / 2)
    assert out["pairs"].item() == pytest.approx(2 / 3)
    assert out["n_similar"].item() == 1
    # | |b| - 1 |_1 per row: 1, 1, 0 -> sum 2 / n = 3
    assert dsh_abs_regularizer(b).item() == pytest.approx(2 / 3)
    # pair_weight 1 = the value Caffe reports (no 1/2)
    assert dsh_pair_loss(b, labels, margin=4.0, pair_weight=1.0)["pairs"].item() == pytest.approx(8 / 6)


def test_margin_clips_far_dissimilar_pairs():
    b = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([[1, 0], [0, 1]])
    assert dsh_pair_loss(b, labels, margin=4.0)["pairs"].item() == 0.0  # d^2 = 9 > m
    assert dsh_pair_loss(b, labels, margin=10.0)["pairs"].item() == pytest.approx(0.5 * 1 / 2)


def _caffe_gradient(b, labels, margin, tradeoff):
    """Direct transcription of the arithmetic of HashingLossLayer::Forward_cpu's gradient (loops, one-hot labels)."""
    n, k = b.shape
    alpha, beta = 1.0 / (n * (n - 1)), 1.0 / n
    g = torch.zeros_like(b)
    for i in range(n):
        for j in range(i + 1, n):
            diff = b[i] - b[j]
            d2 = float(diff @ diff)
            if bool((labels[i].float() @ labels[j].float()) > 0):
                g[i] += alpha * diff
                g[j] -= alpha * diff
            elif margin - d2 > 0:
                g[i] -= alpha * diff
                g[j] += alpha * diff
        for c in range(k):
            x = float(b[i, c])
            g[i, c] += beta * tradeoff * (1.0 if (x >= 1 or (-1 <= x <= 0)) else -1.0)
    return g


def test_gradient_matches_official_caffe_layer():
    torch.manual_seed(0)
    b = (torch.randn(7, 6) * 1.3).requires_grad_()
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 2, 1, 1, 0]), 3)
    margin, tradeoff = 12.0, 0.01
    loss = dsh_pair_loss(b, labels, margin)["pairs"] + tradeoff * dsh_abs_regularizer(b)
    loss.backward()
    expected = _caffe_gradient(b.detach(), labels, margin, tradeoff)
    torch.testing.assert_close(b.grad, expected, rtol=1e-5, atol=1e-6)


def test_multilabel_similarity_is_any_shared_label():
    labels = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    sim = label_similarity(labels)
    assert sim[0, 1] and sim[1, 0] and not sim[0, 2] and not sim[1, 2]


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="label rows"):
        dsh_pair_loss(torch.zeros(3, 4), torch.zeros(2, 2), 8.0)
    with pytest.raises(ValueError, match="at least 2"):
        dsh_pair_loss(torch.zeros(1, 4), torch.zeros(1, 2), 8.0)
