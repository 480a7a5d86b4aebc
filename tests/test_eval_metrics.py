"""Differential tests: every Hamming-ranking metric against a slow, obviously correct per-query implementation."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrieve.eval import evaluate_retrieval, map_at_k, ranking_summary


# ------------------------------------------------------------------ slow references (one query at a time)

def ref_order(qcode, dcodes):
    dist = (np.asarray(qcode)[None, :] != np.asarray(dcodes)).sum(axis=1)
    return dist, np.argsort(dist, kind="stable")


def ref_query_metrics(qcode, qlab, dcodes, dlabs, top_ks, first_ks, pn, order=None):
    """Metrics of one query for the given database order (default: stable order by distance)."""
    dist, stable = ref_order(qcode, dcodes)
    order = stable if order is None else order
    rel = ((np.asarray(dlabs) @ np.asarray(qlab)) > 0).astype(float)[order]
    n = len(rel)
    R = int(rel.sum())
    pos = np.flatnonzero(rel) + 1.0  # 1-based ranks of the relevant items
    ap_all = float(np.mean(np.arange(1, R + 1) / pos)) if R else 0.0
    top = {}
    for k in top_ks:
        p = pos[pos <= k]
        top[k] = float(np.mean(np.arange(1, len(p) + 1) / p)) if len(p) else 0.0
    first = {}
    for k in first_ks:
        L = min(k, R)
        first[k] = float(np.mean(np.arange(1, L + 1) / pos[:L])) if L else 0.0
    p_at = [float(rel[: min(k, n)].sum() / min(k, n)) for k in pn]
    return {"R": R, "ap": ap_all, "top": top, "first": first, "pn": p_at}


def ref_summary(qc, dc, ql, dl, top_ks=(), first_ks=(), pn=(), radius_curves=True):
    per = [ref_query_metrics(qc[i], ql[i], dc, dl, top_ks, first_ks, pn) for i in range(len(qc))]
    nq = len(qc)
    bits = qc.shape[1]
    prec, rec = np.zeros(bits + 1), np.zeros(bits + 1)
    n_rel = 0
    for i in range(nq if radius_curves else 0):
        dist, _ = ref_order(qc[i], dc)
        rel = (dl @ ql[i]) > 0
        for r in range(bits + 1):
            inside = dist <= r
            prec[r] += rel[inside].sum() / inside.sum() if inside.sum() else 0.0
            if rel.sum():
                rec[r] += rel[inside].sum() / rel.sum()
        n_rel += rel.sum() > 0
    return {
        "map@all": np.mean([p["ap"] for p in per]),
        "top": {k: np.mean([p["top"][k] for p in per]) for k in top_ks},
        "first": {k: np.mean([p["first"][k] for p in per]) for k in first_ks},
        "p@n": [np.mean([p["pn"][j] for p in per]) for j in range(len(pn))],
        "precision": prec / nq, "recall": rec / max(n_rel, 1),
        "no_rel": sum(p["R"] == 0 for p in per),
    }


def clustered_case(rng, nq, n, bits, n_labels, n_proto=6, flip=0.08, pm1=True):
    """Codes drawn around a few label-correlated prototypes: many exact ties, realistic relevance."""
    protos = rng.integers(0, 2, (n_proto, bits))
    def draw(m):
        cls = rng.integers(0, n_proto, m)
        codes = protos[cls] ^ (rng.random((m, bits)) < flip)
        labs = (rng.random((m, n_labels)) < 0.15).astype(np.uint8)
        labs[np.arange(m), cls % n_labels] = 1
        return (2 * codes - 1 if pm1 else codes).astype(np.int8), labs
    qc, ql = draw(nq)
    dc, dl = draw(n)
    return qc, dc, ql, dl


# ------------------------------------------------------------------ stable ties: exact agreement

@pytest.mark.parametrize("bits,pm1", [(16, True), (13, False), (1, True), (70, False)])
def test_stable_metrics_match_reference(bits, pm1):
    rng = np.random.default_rng(bits)
    qc, dc, ql, dl = clustered_case(rng, nq=25, n=2500, bits=bits, n_labels=7, pm1=pm1)
    ks = [1, 7, 50, 100, 1000, 5000]
    pn = [1, 10, 100, 2500]
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=pn)
    r = ref_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=pn)
    assert abs(s["map@all"] - r["map@all"]) < 1e-9
    for k in ks:
        assert abs(s["top"][k] - r["top"][k]) < 1e-9, k
        assert abs(s["first"][k] - r["first"][k]) < 1e-9, k
    np.testing.assert_allclose(s["p@n"], r["p@n"], atol=1e-9)
    np.testing.assert_allclose(s["pr"]["precision"], r["precision"], atol=1e-9)
    np.testing.assert_allclose(s["pr"]["recall"], r["recall"], atol=1e-9)
    assert s["p@h<=2"] == s["pr"]["precision"][min(2, bits)]
    assert s["queries_without_relevant"] == r["no_rel"]
    assert 0.0 < s["map@all"] < 1.0  # a non-degenerate case


def test_map_at_k_definitions_and_k_none():
    rng = np.random.default_rng(1)
    qc, dc, ql, dl = clustered_case(rng, nq=20, n=800, bits=16, n_labels=5)
    r = ref_summary(qc, dc, ql, dl, top_ks=[50], first_ks=[50])
    for proto in (None, "bitrieve", "deephash", "ucmfh"):
        assert abs(map_at_k(qc, dc, ql, dl, k=50, map_definition=proto) - r["top"][50]) < 1e-9
    for proto in ("dcmh", "calc_map_k", "djsrh"):  # djsrh: the old name of dcmh, still accepted
        assert abs(map_at_k(qc, dc, ql, dl, k=50, map_definition=proto) - r["first"][50]) < 1e-9
        assert abs(map_at_k(qc, dc, ql, dl, k=None, map_definition=proto) - r["map@all"]) < 1e-9
    assert isinstance(map_at_k(qc, dc, ql, dl), float)


def test_edge_cases_all_equal_k_larger_single_query_no_relevant():
    dc = np.ones((9, 5), np.int8)  # every distance equal
    qc = np.ones((1, 5), np.int8)
    dl = np.array([[0, 1]] * 4 + [[1, 0]] * 5)
    ql = np.array([[1, 0]])
    # stable: relevant items are at ranks 5..9
    expected = np.mean(np.arange(1, 6) / np.arange(5, 10))
    assert abs(map_at_k(qc, dc, ql, dl) - expected) < 1e-12
    assert abs(map_at_k(qc, dc, ql, dl, k=10_000) - expected) < 1e-12  # K larger than the database
    # tie-averaged over all orders of 9 tied items: exhaustive over which slots hold the 5 relevant items
    vals = []
    for slots in itertools.combinations(range(1, 10), 5):
        vals.append(np.mean(np.arange(1, 6) / np.array(slots)))
    assert abs(map_at_k(qc, dc, ql, dl, tie="tie-averaged") - np.mean(vals)) < 1e-12
    # a query with no relevant item: AP 0, and counted
    s = ranking_summary(np.vstack([qc, qc]), dc, np.array([[1, 0], [0, 0]]), dl, top_ks=[3])
    assert s["queries_without_relevant"] == 1
    assert abs(s["map@all"] - expected / 2) < 1e-12


def test_integer_class_labels_equal_one_hot():
    rng = np.random.default_rng(3)
    qc, dc = rng.integers(0, 2, (10, 12)), rng.integers(0, 2, (300, 12))
    qy, dy = rng.integers(0, 4, 10), rng.integers(0, 4, 300)
    a = map_at_k(qc, dc, qy, dy, k=20)
    b = map_at_k(qc, dc, np.eye(4)[qy], np.eye(4)[dy], k=20)
    assert a == b


# ------------------------------------------------------------------ tie-averaged: exhaustive permutations

def exhaustive_tie_average(qc, dc, ql, dl, top_ks, first_ks, pn):
    """Average the stable metrics over every ordering of the database (= uniform order within ties)."""
    n = len(dc)
    acc = None
    count = 0
    for perm in itertools.permutations(range(n)):
        perm = np.array(perm)
        r = ref_summary(qc, dc[perm], ql, dl[perm], top_ks, first_ks, pn, radius_curves=False)
        vec = np.concatenate([[r["map@all"]], [r["top"][k] for k in top_ks], [r["first"][k] for k in first_ks],
                              r["p@n"]])
        acc = vec if acc is None else acc + vec
        count += 1
    return acc / count


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_tie_averaged_equals_exhaustive_average(data):
    n = data.draw(st.integers(1, 6), label="n")
    bits = data.draw(st.integers(1, 3), label="bits")
    nq = data.draw(st.integers(1, 2), label="nq")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    rng = np.random.default_rng(seed)
    qc, dc = rng.integers(0, 2, (nq, bits)), rng.integers(0, 2, (n, bits))
    ql, dl = rng.integers(0, 2, (nq, 2)), rng.integers(0, 2, (n, 2))
    ks = list(range(1, n + 2))
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks, tie="tie-averaged")
    got = np.concatenate([[s["map@all"]], [s["top"][k] for k in ks], [s["first"][k] for k in ks], s["p@n"]])
    want = exhaustive_tie_average(qc, dc, ql, dl, ks, ks, ks)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_tie_averaged_monte_carlo_and_no_tie_agreement():
    rng = np.random.default_rng(7)
    qc, dc, ql, dl = clustered_case(rng, nq=6, n=400, bits=16, n_labels=4, flip=0.05)
    ks = [10, 50]
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, tie="tie-averaged")
    draws = []
    for _ in range(300):
        perm = rng.permutation(len(dc))
        r = ref_summary(qc, dc[perm], ql, dl[perm], ks, ks, radius_curves=False)
        draws.append([r["map@all"], r["top"][10], r["top"][50], r["first"][10], r["first"][50]])
    draws = np.array(draws)
    got = np.array([s["map@all"], s["top"][10], s["top"][50], s["first"][10], s["first"][50]])
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(got - draws.mean(axis=0)) <= 4 * se + 1e-12)
    # with all distances distinct, the two tie policies coincide
    dc2 = (np.arange(4)[None, :] < np.array([0, 1, 2, 3, 4])[:, None]).astype(int)[::-1]  # distances 4..0
    ql2, dl2 = np.array([[1, 0]]), np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0]])
    q0 = np.zeros((1, 4), int)
    for k in (None, 2, 3):
        assert abs(map_at_k(q0, dc2, ql2, dl2, k=k) - map_at_k(q0, dc2, ql2, dl2, k=k, tie="tie-averaged")) < 1e-12


# ------------------------------------------------------------------ evaluate_retrieval

def test_evaluate_retrieval_structure_and_values():
    import json

    rng = np.random.default_rng(5)
    qi, di, ql, dl = clustered_case(rng, nq=15, n=600, bits=16, n_labels=5)
    qt, dt = -qi, di.copy()  # text codes: a different code set of the same shape
    res = evaluate_retrieval({"image": qi, "text": qt}, {"image": di, "text": dt}, ql, dl,
                             tasks=("i2t", "t2i", "i2i", "t2t"), ks=(50, 100), map_definitions=("djsrh", "deephash"))
    json.dumps(res)  # plain Python types only
    assert set(res) == {"i2t", "t2i", "i2i", "t2t", "curves", "map_definitions"}
    assert abs(res["i2t"]["map@50"] - map_at_k(qi, dt, ql, dl, k=50)) < 1e-12
    assert abs(res["t2i"]["map@all"] - map_at_k(qt, di, ql, dl)) < 1e-12
    # djsrh, the old name of dcmh, is stored under the current name
    assert set(res["map_definitions"]) == {"dcmh", "deephash"}
    assert abs(res["map_definitions"]["dcmh"]["i2i"]["map@100"] - map_at_k(qi, di, ql, dl, 100, map_definition="dcmh")) < 1e-12
    assert res["map_definitions"]["deephash"]["t2t"]["map@50"] == res["t2t"]["map@50"]
    pr = res["curves"]["i2t"]["pr"]
    assert len(pr["radius"]) == len(pr["precision"]) == len(pr["recall"]) == 17 and pr["recall"][-1] == 1.0
    assert res["curves"]["i2t"]["p@n"]["n"][-1] == 600
    # modalities absent from the database are skipped
    only = evaluate_retrieval({"image": qi}, {"text": dt}, ql, dl, tasks=("i2t", "t2i"), curves=False)
    assert set(only) == {"i2t", "curves", "map_definitions"} and only["curves"] == {}


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_stable_property_random_shapes(data):
    """Any shape (1..200 items, 1..20 bits, 1..70 labels): equals the reference; ±1 and 0/1 give the same value;
    every mAP lies in [0, 1]; mAP@K for K >= N equals mAP@all."""
    n = data.draw(st.integers(1, 200), label="n")
    nq = data.draw(st.integers(1, 5), label="nq")
    bits = data.draw(st.integers(1, 20), label="bits")
    C = data.draw(st.integers(1, 70), label="labels")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    rng = np.random.default_rng(seed)
    qc, dc = rng.integers(0, 2, (nq, bits)), rng.integers(0, 2, (n, bits))
    ql, dl = (rng.random((nq, C)) < 0.2).astype(int), (rng.random((n, C)) < 0.2).astype(int)
    ks = sorted({1, max(1, n // 3), n, n + 5})
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks)
    r = ref_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks)
    assert abs(s["map@all"] - r["map@all"]) < 1e-9
    for k in ks:
        assert abs(s["top"][k] - r["top"][k]) < 1e-9 and abs(s["first"][k] - r["first"][k]) < 1e-9
        assert 0.0 <= s["top"][k] <= 1.0 and 0.0 <= s["first"][k] <= 1.0
    np.testing.assert_allclose(s["p@n"], r["p@n"], atol=1e-9)
    assert s["top"][n + 5] == s["top"][n] and abs(s["top"][n] - s["map@all"]) < 1e-12
    assert map_at_k(2 * qc - 1, 2 * dc - 1, ql, dl, k=ks[1]) == map_at_k(qc, dc, ql, dl, k=ks[1])


def ref_tie_averaged_query(qcode, qlab, dcodes, dlabs, top_ks, first_ks):
    """Tie-averaged metrics of one query by direct summation with scipy's hypergeometric pmf.

    Inside a tie group (n items, r relevant, after s items / rb relevant ones) a relevant item sits at slot u
    (uniform on 1..n) and has Hypergeom(u-1 draws; n-1 items, r-1 relevant) relevant items before it. (The
    derivation is checked exhaustively on tiny cases above; this checks the fast implementation at scale.)"""
    from scipy.stats import hypergeom

    dist, _ = ref_order(qcode, dcodes)
    rel = (np.asarray(dlabs) @ np.asarray(qlab)) > 0
    bits = len(qcode)
    groups = [(int((dist == b).sum()), int((rel & (dist == b)).sum())) for b in range(bits + 1)]
    R = int(rel.sum())
    if R == 0:
        return 0.0, {k: 0.0 for k in top_ks}, {k: 0.0 for k in first_ks}

    def group_sum(s, n, rb, r):  # E[sum of precisions of the group's relevant items]
        u = np.arange(1, n + 1)
        frac = (u - 1) * (r - 1) / (n - 1) if n > 1 else 0.0
        return float(np.sum(r / n * (rb + 1 + frac) / (s + u)))

    ap, s, rb = 0.0, 0, 0
    for n, r in groups:
        ap += group_sum(s, n, rb, r) if r else 0.0
        s, rb = s + n, rb + r
    top = {}
    for K in top_ks:
        s, rb, full = 0, 0, 0.0
        val = None
        for n, r in groups:
            if s + n <= K:
                full += group_sum(s, n, rb, r) if r else 0.0
                s, rb = s + n, rb + r
                continue
            m = K - s
            if m <= 0 or r == 0:
                break
            val = 0.0
            for y in range(0, min(m, r) + 1):
                p = hypergeom(n, r, m).pmf(y)
                if rb + y > 0 and p > 0:
                    val += p * (full + (group_sum(s, m, rb, y) if y else 0.0)) / (rb + y)
            break
        top[K] = val if val is not None else (full / rb if rb else 0.0)
    first = {}
    for K in first_ks:
        L = min(K, R)
        s, rb, acc = 0, 0, 0.0
        for n, r in groups:
            if r and rb + r <= L:
                acc += group_sum(s, n, rb, r)
            elif r:
                t = L - rb
                for u in range(1, n + 1):
                    z = np.arange(0, t)
                    pz = hypergeom(n - 1, r - 1, u - 1).pmf(z)
                    acc += r / n * float(np.sum(pz * (rb + 1 + z))) / (s + u)
                break
            s, rb = s + n, rb + r
        first[K] = acc / L
    return ap / R, top, first


def test_tie_averaged_matches_direct_summation_at_scale():
    rng = np.random.default_rng(11)
    qc, dc, ql, dl = clustered_case(rng, nq=4, n=1500, bits=16, n_labels=5, flip=0.15, n_proto=10)
    ks = [10, 100, 300]
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, tie="tie-averaged")
    stable = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks)
    assert all(abs(s[key][k] - stable[key][k]) > 1e-6 for key in ("top", "first") for k in ks)  # ties matter
    per = [ref_tie_averaged_query(qc[i], ql[i], dc, dl, ks, ks) for i in range(len(qc))]
    assert abs(s["map@all"] - np.mean([p[0] for p in per])) < 1e-9
    for k in ks:
        assert abs(s["top"][k] - np.mean([p[1][k] for p in per])) < 1e-9, k
        assert abs(s["first"][k] - np.mean([p[2][k] for p in per])) < 1e-9, k


# ------------------------------------------------------------------ the multi-word branch and query chunking

def test_histograms_multi_word_branch_counts_by_enumeration():
    """> 64 bits and > 64 labels take the kernels' multi-word path: its per-distance counts of all / relevant items
    equal a direct count, and tie-averaged metrics there equal the average over every database order."""
    from bitrieve.eval import _kernels
    from bitrieve.eval.hamming import Codes
    from bitrieve.eval.metrics import _pair_labels

    rng = np.random.default_rng(21)
    bits, n_labels = 70, 67
    qc = rng.integers(0, 2, (3, bits))
    dc = np.repeat(qc[:1], 5, axis=0)
    dc[:, 60:70] = rng.integers(0, 2, (5, 10))  # differences on both sides of the 64-bit word boundary
    dc[1] = dc[3]  # an exact tie
    ql = np.zeros((3, n_labels), np.uint8)
    dl = np.zeros((5, n_labels), np.uint8)
    ql[0, 66], ql[1, 2], ql[2, [5, 66]] = 1, 1, 1  # label 66 lives in the second label word
    dl[[0, 3], 66], dl[1, 2], dl[4, 5] = 1, 1, 1
    q, d = Codes.pack(qc), Codes.pack(dc)
    qlw, dlw = _pair_labels(ql, dl, 3, 5)
    assert q.words.shape[1] == 2 and qlw.shape[1] == 2  # two words each: the branch under test
    cnt_all, cnt_rel = _kernels.histograms(q.words, d.words, qlw, dlw, bits)
    for i in range(3):
        dist = (qc[i][None, :] != dc).sum(axis=1)
        rel = (dl @ ql[i]) > 0
        np.testing.assert_array_equal(cnt_all[i], np.bincount(dist, minlength=bits + 1))
        np.testing.assert_array_equal(cnt_rel[i], np.bincount(dist[rel], minlength=bits + 1))
    ks = [1, 2, 4, 6]
    s = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks, tie="tie-averaged")
    got = np.concatenate([[s["map@all"]], [s["top"][k] for k in ks], [s["first"][k] for k in ks], s["p@n"]])
    np.testing.assert_allclose(got, exhaustive_tie_average(qc, dc, ql, dl, ks, ks, ks), atol=1e-12)


@pytest.mark.parametrize("tie", ["stable", "tie-averaged"])
def test_ranking_summary_chunked_over_queries_equals_reference(tie):
    """chunk < number of queries: the per-chunk sums (mAP, top-K, first-K, P@n, PR curve, queries without a
    relevant item) add up to the per-query reference."""
    rng = np.random.default_rng(31)
    qc, dc, ql, dl = clustered_case(rng, nq=11, n=300, bits=12, n_labels=5, pm1=False)
    ql[4] = 0  # a query with no relevant item, inside the second chunk
    ks = [5, 40]
    whole = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks, tie=tie)
    chunked = ranking_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks, tie=tie, chunk=3)
    assert chunked["queries_without_relevant"] == 1
    np.testing.assert_allclose(chunked["pr"]["precision"], whole["pr"]["precision"], atol=1e-12)
    np.testing.assert_allclose(chunked["pr"]["recall"], whole["pr"]["recall"], atol=1e-12)
    assert abs(chunked["map@all"] - whole["map@all"]) < 1e-12
    if tie == "stable":  # the per-query reference ranks with stable ties
        r = ref_summary(qc, dc, ql, dl, top_ks=ks, first_ks=ks, pn=ks)
        assert abs(chunked["map@all"] - r["map@all"]) < 1e-9
        for k in ks:
            assert abs(chunked["top"][k] - r["top"][k]) < 1e-9 and abs(chunked["first"][k] - r["first"][k]) < 1e-9
        np.testing.assert_allclose(chunked["p@n"], r["p@n"], atol=1e-9)
        np.testing.assert_allclose(chunked["pr"]["precision"], r["precision"], atol=1e-9)
        np.testing.assert_allclose(chunked["pr"]["recall"], r["recall"], atol=1e-9)
    else:  # tie-averaged: against direct summation per query (ref_tie_averaged_query)
        per = [ref_tie_averaged_query(qc[i], ql[i], dc, dl, ks, ks) for i in range(len(qc))]
        assert abs(chunked["map@all"] - np.mean([p[0] for p in per])) < 1e-9
        for k in ks:
            assert abs(chunked["top"][k] - np.mean([p[1][k] for p in per])) < 1e-9
            assert abs(chunked["first"][k] - np.mean([p[2][k] for p in per])) < 1e-9
