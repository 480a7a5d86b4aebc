"""Codes packing, Hamming distances and stable ranking against brute force; clear errors for bad inputs."""

import numpy as np
import pytest

from bitrieve.eval import Codes, evaluate_retrieval, hamming_rank, map_at_k, recall_at_k
from bitrieve.eval.hamming import hamming_distance


@pytest.mark.parametrize("bits", [1, 7, 13, 64, 65, 200, 1024])
def test_pack_roundtrip_distance_and_rank(bits):
    rng = np.random.default_rng(bits)
    a = rng.integers(0, 2, (20, bits))
    b = rng.integers(0, 2, (150, bits))
    ca, cb = Codes.pack(2 * a - 1), Codes.pack(b)
    assert ca.bits == bits and ca.words.shape == (20, (bits + 63) // 64) and ca.words.dtype == np.uint64
    np.testing.assert_array_equal(ca.unpack(signed=False), a)
    np.testing.assert_array_equal(ca.unpack(), 2 * a - 1)
    np.testing.assert_array_equal(Codes.from_bytes(cb.to_bytes(), bits).words, cb.words)
    assert cb.to_bytes().shape == (150, (bits + 7) // 8)
    np.testing.assert_array_equal(cb.to_bytes(), np.packbits(b.astype(bool), axis=1, bitorder="little"))
    dist = (a[:, None, :] != b[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(hamming_distance(ca, cb), dist)
    order = np.argsort(dist, axis=1, kind="stable")
    np.testing.assert_array_equal(hamming_rank(ca, b), order)
    np.testing.assert_array_equal(hamming_rank(2 * a - 1, cb, k=9), order[:, :9])
    np.testing.assert_array_equal(hamming_rank(a, b, k=10_000), order)  # k larger than the database


def test_rank_ties_follow_database_order():
    db = np.array([[1, 1], [0, 0], [1, 1], [1, 0], [0, 1], [1, 1]])
    q = np.array([[1, 1]])
    np.testing.assert_array_equal(hamming_rank(q, db)[0], [0, 2, 5, 3, 4, 1])


def test_bool_and_torch_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (5, 10)).astype(bool)
    t = torch.from_numpy(2.0 * a - 1.0)
    np.testing.assert_array_equal(Codes.pack(a).words, Codes.pack(t).words)


GOOD_Q = np.array([[1, -1, 1], [-1, -1, 1]])
GOOD_D = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1]])
GOOD_QL = np.array([[1, 0], [0, 1]])
GOOD_DL = np.array([[1, 0], [0, 1], [1, 1]])


@pytest.mark.parametrize("args,kwargs,match", [
    ((np.array([[1, 0, -1], [1, 1, 1]]), GOOD_D, GOOD_QL, GOOD_DL), {}, "query codes: codes are not binary"),
    ((GOOD_Q, GOOD_D * 2, GOOD_QL, GOOD_DL), {}, "database codes: codes are not binary"),
    ((GOOD_Q, GOOD_D[:, :2], GOOD_QL, GOOD_DL), {}, "bit-length mismatch: query codes have 3 bits, database"),
    ((GOOD_Q, GOOD_D, GOOD_QL, np.ones((3, 3))), {}, "label width mismatch"),
    ((GOOD_Q, GOOD_D, GOOD_QL, GOOD_DL[:2]), {}, "database labels have 2 rows but there are 3 database codes"),
    ((np.array([[1.0, np.nan, 1.0]]), GOOD_D, GOOD_QL[:1], GOOD_DL), {}, "query codes: codes contain NaN or inf"),
    ((GOOD_Q, GOOD_D, np.array([[1.0, np.inf], [0, 1]]), GOOD_DL), {}, "query labels: labels contain NaN or inf"),
    ((GOOD_Q, GOOD_D, np.array([[2, 0], [0, 1]]), GOOD_DL), {}, "query labels: labels must be multi-hot 0/1"),
    ((np.zeros((0, 3)), GOOD_D, GOOD_QL, GOOD_DL), {}, "query codes: empty input"),
    ((GOOD_Q, np.zeros((0, 3)), GOOD_QL, GOOD_DL), {}, "database codes: empty input"),
    ((GOOD_Q, GOOD_D, GOOD_QL, GOOD_DL), {"k": 0}, "K must be a positive integer, got 0"),
    ((GOOD_Q, GOOD_D, GOOD_QL, GOOD_DL), {"k": -5}, "K must be a positive integer, got -5"),
    ((GOOD_Q, GOOD_D, GOOD_QL, GOOD_DL), {"tie": "random"}, "unknown tie policy 'random'"),
    ((GOOD_Q, GOOD_D, GOOD_QL, GOOD_DL), {"k": 2, "map_definition": "nope"}, "unknown mAP@K definition 'nope'"),
    ((np.ones((2, 1025)), np.ones((3, 1025)), GOOD_QL, GOOD_DL), {}, "1025 bits; at most 1024"),
    ((GOOD_Q[0], GOOD_D, GOOD_QL, GOOD_DL), {}, "query codes: expected a 2-d array"),
])
def test_clear_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        map_at_k(*args, **kwargs)


def test_error_messages_elsewhere():
    with pytest.raises(ValueError, match="unknown task"):
        evaluate_retrieval({"image": GOOD_Q}, {"text": GOOD_D}, GOOD_QL, GOOD_DL, tasks=("x2y",))
    with pytest.raises(ValueError, match="K must be a positive integer"):
        evaluate_retrieval({"image": GOOD_Q}, {"text": GOOD_D}, GOOD_QL, GOOD_DL, ks=(0,))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        hamming_rank(GOOD_Q, GOOD_D, k=0)
    with pytest.raises(ValueError, match="query embeddings: contains NaN or inf"):
        recall_at_k(np.array([[np.nan, 1.0]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="dimension mismatch"):
        recall_at_k(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="pass query_groups / db_groups"):
        recall_at_k(np.ones((2, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="no database item with the same group id"):
        recall_at_k(np.ones((2, 3)), np.ones((2, 3)), query_groups=[0, 5], db_groups=[0, 1])


@pytest.mark.slow
def test_benchmark_quick_runs_and_ends_with_the_result_line():
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "eval_speed.py"), "--quick"],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"speedup=([\d.]+) maxdiff=([\d.e+-]+) nus_seconds=([\d.]+) nus_peak_gib=([\d.]+)", last)
    assert m, last
    assert float(m.group(2)) < 1e-9  # identical values to the per-query loop
