"""parts/graph.py: symmetric normalisation D^-1/2 (A + I) D^-1/2 and graph convolution (Kipf & Welling 2017)."""

import pytest
import torch

from bitrieve.parts.graph import GCNHash, GraphConv, normalized_adjacency


def test_normalized_adjacency_hand_computed():
    a = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # A + I = [[2, .5, 0], [.5, 2, 0], [0, 0, 2]], degrees 2.5, 2.5, 2
    expected = torch.tensor([[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(normalized_adjacency(a), expected, atol=1e-6)
    # without self loops: degrees 1.5, 1.5, 1
    no_loops = normalized_adjacency(a, self_loops=False)
    assert torch.allclose(no_loops[0, 1], torch.tensor(0.5 / 1.5), atol=1e-6)
    assert torch.allclose(no_loops, no_loops.T)


def test_negative_degrees_are_an_error_unless_abs():
    a = torch.tensor([[1.0, -3.0], [-3.0, 1.0]])
    with pytest.raises(ValueError, match="degree"):
        normalized_adjacency(a)
    n = normalized_adjacency(a, abs_degree=True)  # degrees |2| + |-3| = 5
    assert torch.allclose(n, torch.tensor([[0.4, -0.6], [-0.6, 0.4]]), atol=1e-6)


def test_graph_conv_is_a_hat_x_w_plus_b():
    torch.manual_seed(0)
    conv = GraphConv(4, 3)
    x, adj = torch.randn(5, 4), normalized_adjacency(torch.rand(5, 5))
    assert torch.allclose(conv(x, adj), adj @ x @ conv.linear.weight.T + conv.linear.bias, atol=1e-5)
    with pytest.raises(ValueError, match="nodes"):
        conv(x, torch.eye(4))


def test_gcn_hash_widths_and_range():
    g = GCNHash(16, [8, 6], bits=5)
    out = g(torch.randn(4, 16), torch.eye(4))
    assert out.shape == (4, 5) and bool((out.abs() < 1).all())
    assert [c.linear.out_features for c in g.convs] == [8, 6]
