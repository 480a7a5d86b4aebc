"""The unseen-database protocol (eval/unseen.py) against a brute-force reference, and the engine's parameter-movement
diagnostic (engine/movement.py) on hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from bitrieve.engine.movement import ParameterMovement
from bitrieve.eval.unseen import leave_one_out_retrieval


def _brute_ap(q, db, qlab, dlab, k=None):
    """AP of one query: Hamming distances, stable sort (ties by database order), relevance = shared label."""
    dist = (q[None, :] != db).sum(1)
    order = np.argsort(dist, kind="stable")
    rel = (dlab[order] @ qlab) > 0
    if k is not None:
        rel = rel[:k]
    hits = np.cumsum(rel)
    prec = hits / np.arange(1, len(rel) + 1)
    return float((prec * rel).sum() / rel.sum()) if rel.sum() else 0.0


def test_unseen_retrieval_matches_brute_force_leave_one_out():
    rng = np.random.default_rng(3)
    n, bits = 40, 6  # short codes: many ties, so the tie rule matters
    labels = np.zeros((n, 4), np.uint8)
    labels[np.arange(n), rng.integers(0, 4, n)] = 1
    labels[:5, 1] = 1  # some multi-label rows
    codes = {m: np.where(rng.random((n, bits)) > 0.5, 1, -1) for m in ("image", "text")}
    got = leave_one_out_retrieval(codes, labels, tasks=("i2t", "t2i", "i2i"), ks=(5,))
    for task, (qm, dm) in {"i2t": ("image", "text"), "t2i": ("text", "image"), "i2i": ("image", "image")}.items():
        aps, ap5 = [], []
        for i in range(n):
            keep = [j for j in range(n) if j != i]  # the query's own pair is not in its database
            aps.append(_brute_ap(codes[qm][i], codes[dm][keep], labels[i], labels[keep]))
            ap5.append(_brute_ap(codes[qm][i], codes[dm][keep], labels[i], labels[keep], k=5))
        assert got[task]["map@all"] == pytest.approx(np.mean(aps), abs=1e-12), task
        assert got[task]["map@5"] == pytest.approx(np.mean(ap5), abs=1e-12), task
        assert got[task]["n_query"] == n and got[task]["n_retrieval"] == n - 1


def test_unseen_retrieval_excludes_the_own_pair():
    # two items of different classes whose image and text codes are identical: with the own pair in the database,
    # i2t would find it at distance 0; left out, the only other item is irrelevant -> AP 0
    codes = {"image": np.array([[1, 1], [-1, -1]]), "text": np.array([[1, 1], [-1, -1]])}
    labels = np.array([[1, 0], [0, 1]], np.uint8)
    assert leave_one_out_retrieval(codes, labels)["i2t"]["map@all"] == 0.0
    with pytest.raises(ValueError, match="same items"):
        leave_one_out_retrieval({"image": np.ones((3, 4)), "text": np.ones((2, 4))}, np.eye(3))
    with pytest.raises(ValueError, match="labels have"):
        leave_one_out_retrieval(codes, np.eye(3, dtype=np.uint8))


class _TwoGroups(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
        self.b = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
        self.frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)

    def param_groups(self):
        return {"a": {"params": [self.a], "lr": 1.0}, "b": {"params": [self.b, self.frozen], "lr": 1.0}}


def test_parameter_movement_separates_rescaling_from_training():
    m = _TwoGroups()
    mv = ParameterMovement(m)
    with torch.no_grad():
        m.a.mul_(0.9)  # pure shrinkage (what weight decay alone does): moved 10%, nothing beyond a rescaling
        m.b.add_(torch.tensor([0.0, 0.5]))  # orthogonal move of half the initial norm
    rep = mv.report(m, threshold=0.01)
    a, b = rep["groups"]["a"], rep["groups"]["b"]
    assert a["relative_change"] == pytest.approx(0.1) and a["norm_ratio"] == pytest.approx(0.9)
    assert a["beyond_decay"] == pytest.approx(0.0, abs=1e-6)  # float32 weights: rounding only
    assert b["relative_change"] == pytest.approx(0.5) and b["beyond_decay"] == pytest.approx(0.5)
    assert b["norm_ratio"] == pytest.approx(math.sqrt(1.25)) and b["n_params"] == 2  # frozen tensor excluded
    assert len(rep["warnings"]) == 1 and "'a'" in rep["warnings"][0] and "NOT TRAINING" in rep["warnings"][0]
