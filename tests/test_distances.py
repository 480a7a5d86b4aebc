"""parts/distances.py: inner products, cosines, Euclidean distances and label similarity on hand-computed cases."""

import math

import pytest
import torch

from bitrieve.parts.distances import (cosine_similarities, euclidean_distances, inner_products, label_similarity,
                                      squared_euclidean)

A = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
B = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.0, 0.0]])


def test_inner_products_and_cosines_by_hand():
    assert inner_products(A, B).tolist() == [[3.0, -4.0, 0.0], [0.0, -2.0, 0.0]]
    assert inner_products(A).tolist() == [[25.0, 8.0], [8.0, 4.0]]
    # rows of A normalised: (0.6, 0.8), (0, 1); the zero row of B gives cosine 0, not NaN
    assert torch.allclose(cosine_similarities(A, B), torch.tensor([[0.6, -0.8, 0.0], [0.0, -1.0, 0.0]]))
    assert torch.allclose(cosine_similarities(A), torch.tensor([[1.0, 0.8], [0.8, 1.0]]))


def test_squared_and_plain_euclidean_by_hand():
    # (3-1)^2 + 4^2 = 20, 3^2 + 5^2 = 34, 3^2 + 4^2 = 25; 1 + 2^2 = 5, 3^2 = 9, 2^2 = 4
    assert squared_euclidean(A, B).tolist() == [[20.0, 34.0, 25.0], [5.0, 9.0, 4.0]]
    assert squared_euclidean(A).tolist() == [[0.0, 13.0], [13.0, 0.0]]
    d = euclidean_distances(A.double())
    assert d.flatten().tolist() == pytest.approx([0.0, math.sqrt(13), math.sqrt(13), 0.0], rel=1e-12)


def test_euclidean_distances_diagonal_is_exactly_zero():
    z = torch.randn(50, 300, generator=torch.Generator().manual_seed(0))
    d = euclidean_distances(z)
    assert (d.diagonal() == 0).all()  # the Gram expansion alone leaves rounding there
    assert torch.allclose(d, torch.cdist(z.double(), z.double()).float(), atol=1e-3)


def test_label_similarity_is_any_shared_label():
    la = torch.tensor([[1, 1, 0], [0, 0, 1]], dtype=torch.uint8)
    lb = torch.tensor([[1, 0, 0], [0, 1, 1]], dtype=torch.uint8)
    assert label_similarity(la, lb).tolist() == [[True, True], [False, True]]
    assert label_similarity(la).tolist() == [[True, False], [False, True]]


def test_shape_errors_name_the_function_and_shapes():
    with pytest.raises(ValueError, match=r"inner_products: .*\(2, 2\) and \(1, 3\)"):
        inner_products(A, torch.ones(1, 3))
    with pytest.raises(ValueError, match="squared_euclidean"):
        squared_euclidean(torch.ones(3))
    with pytest.raises(ValueError, match="label_similarity: labels must be multi-hot"):
        label_similarity(torch.ones(3))
