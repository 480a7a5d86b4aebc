"""The one encode loop (bitrieve.codes.encode): batches, eval mode, no autograd, the sign rule, packing."""

import numpy as np
import pytest
import torch

from bitrieve.codes import CodesError
from bitrieve.codes.encode import encode, encode_codes, encode_pairs


class Linear(torch.nn.Module):
    """h = x W (+ a dropout that would change h in training mode); records the batch sizes it saw."""

    def __init__(self, w: np.ndarray):
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(w))
        self.bits = w.shape[1]
        self.drop = torch.nn.Dropout(0.9)
        self.seen: list[int] = []

    def encode(self, modality, x):
        assert not torch.is_grad_enabled() and not self.training and x.dtype == torch.float32
        self.seen.append(x.shape[0])
        return self.drop(x @ self.w) * (1.0 if modality == "image" else -1.0)

    def encode_pair(self, image, text, scale=1.0):
        self.seen.append(image.shape[0])
        return scale * (image @ self.w), scale * (text @ self.w)


def _case(n=23, d=5, bits=70, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(n, d)), rng.normal(size=(d, bits)).astype(np.float32)
    x[0] = 0.0  # an all-zero row: every output is exactly 0, which the sign rule maps to +1
    return x, w


def test_encode_batches_rows_and_restores_training_mode():
    x, w = _case()
    m = Linear(w).train()
    h = encode(m, x, "image", batch_size=10, rows=21)
    ref = x[:21].astype(np.float32) @ w  # float64 inputs are encoded as float32
    assert m.training and m.seen == [10, 10, 1] and h.dtype == torch.float32
    np.testing.assert_allclose(h.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert encode(m, x[:0], "image").shape == (0, 70)


def test_encode_codes_is_the_sign_rule_packed_batch_by_batch():
    x, w = _case()
    m = Linear(w)
    codes = encode_codes(m, x, "text", batch_size=8)
    ref = np.where(-(x.astype(np.float32) @ w) >= 0, 1, -1)  # text outputs are -xW; 0 -> +1
    assert codes.bits == 70 and codes.words.shape == (23, 2) and m.seen == [8, 8, 7]
    np.testing.assert_array_equal(codes.unpack(), ref)
    assert (codes.unpack()[0] == 1).all()
    # bit i of a code is bit i % 64 of word i // 64 (the layout of bitrieve.codes), checked on the first code
    words = [sum(1 << i for i in range(64 * j, min(64 * (j + 1), 70)) if ref[1, i] == 1) >> (64 * j) for j in (0, 1)]
    assert [int(v) for v in codes.words[1]] == words


def test_a_wrong_output_shape_names_the_method_and_both_shapes():
    x, w = _case()
    m = Linear(w)
    m.bits = 64
    with pytest.raises(CodesError, match=r"Linear.encode\('image'\) returned shape \(23, 70\), expected \(23, 64\)"):
        encode_codes(m, x, "image")


def test_encode_pairs_passes_the_hook_options_and_drops_the_last_batch_on_request():
    x, w = _case(n=10)
    m = Linear(w)
    hv, ht = encode_pairs(m, x, 2 * x, batch_size=4, scale=-1.0)
    assert m.seen == [4, 4, 2]
    np.testing.assert_allclose(hv.numpy(), -(x.astype(np.float32) @ w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ht.numpy(), -2 * (x.astype(np.float32) @ w), rtol=1e-5, atol=1e-4)
    m.seen = []
    hv, _ = encode_pairs(m, x, x, batch_size=4, drop_last=True)
    assert m.seen == [4, 4] and hv.shape == (8, 70)
    assert encode_pairs(m, x[:3], x[:3], batch_size=4, drop_last=True)[0].shape == (0, 70)
