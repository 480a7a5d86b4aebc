"""bitrieve.codes: the sign rule, the one validator, the bit layout and the popcount, against hand-computed cases."""

import numpy as np
import pytest
import torch

from bitrieve.codes import Codes, CodesError, pack_bits, sign, sign_bits, to_bits
from bitrieve.codes.popcount import popcount64


def test_sign_rule_maps_zero_to_plus_one():
    h = [[-2.0, -0.0, 0.0, 1e-30, -1e-30]]
    want = [[-1, 1, 1, 1, -1]]  # -0.0 >= 0 too
    np.testing.assert_array_equal(sign(np.array(h)), want)
    np.testing.assert_array_equal(sign(torch.tensor(h, requires_grad=True)), want)
    assert sign(np.array(h)).dtype == np.int8
    np.testing.assert_array_equal(sign_bits(torch.tensor(h)), np.array(want) == 1)


def test_layout_hand_computed_words_and_bytes():
    bits = np.zeros((2, 70), bool)
    bits[0, [0, 2]] = True  # word 0 = 0b101 = 5
    bits[1, [63, 64, 69]] = True  # word 0 = 2^63, word 1 = 1 + 32
    c = Codes.pack(bits)
    assert c.words.tolist() == [[5, 0], [2**63, 33]] and c.bits == 70
    assert c.to_bytes().shape == (2, 9)
    assert c.to_bytes()[1].tolist() == [0, 0, 0, 0, 0, 0, 0, 128, 33]
    np.testing.assert_array_equal(Codes.pack(2 * bits.astype(int) - 1).words, c.words)  # ±1 = 0/1 = bool
    np.testing.assert_array_equal(c.unpack(signed=False), bits.astype(np.int8))
    np.testing.assert_array_equal(Codes.from_bytes(c.to_bytes(), 70).words, c.words)
    labels = np.zeros((1, 65), bool)
    labels[0, 64] = True
    assert pack_bits(labels).tolist() == [[0, 1]]  # labels share the layout


@pytest.mark.parametrize("codes,match", [
    (np.array([[1, 0, -1]]), r"q: codes are not binary.*\{-1, 0, 1\}.*map them to \+1 or -1"),
    (np.array([[0.3, -1.0]]), r"q: codes are not binary.*take the sign"),
    (np.array([[1.0, np.nan]]), "q: codes contain NaN or inf"),
    (np.ones(3), r"q: expected a 2-d array \(items, bits\), got shape \(3,\)"),
    (np.ones((0, 3)), r"q: empty input, shape \(0, 3\)"),
    (np.ones((2, 1025)), "q: 1025 bits; at most 1024"),
    (np.array([["a"]]), "q: codes must be numeric"),
])
def test_validator_errors_name_the_array(codes, match):
    with pytest.raises(CodesError, match=match):
        to_bits(codes, "q")


def test_empty_allowed_where_asked_and_bad_words_refused():
    assert to_bits(np.ones((0, 3)), "q", allow_empty=True).shape == (0, 3)
    with pytest.raises(CodesError, match="do not fit bits=65"):
        Codes(np.zeros((1, 1), "<u8"), 65)


def test_popcount_equals_counting_the_binary_digits():
    rng = np.random.default_rng(0)
    values = [0, 1, 2**63, 2**64 - 1] + [int(v) for v in rng.integers(0, 2**63, 50, dtype=np.int64)] \
        + [int(v) | (1 << 63) for v in rng.integers(0, 2**63, 20, dtype=np.int64)]
    for v in values:
        assert int(popcount64(np.uint64(v))) == bin(v).count("1"), v
