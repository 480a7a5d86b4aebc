"""Hamming-ranking retrieval metrics: mAP@all, mAP@K, P@N curve, PR curve over Hamming radius, P@H<=2.

Rules (docs/evaluation.md has the formulas and the sources):
- Ranking: ascending Hamming distance; ties by database order (``tie="stable"``) or averaged over a uniformly random
  order within equal distances (``tie="tie-averaged"``, exact closed form).
- Relevance: query and database item share at least one label (multi-hot rows; a 1-d integer array is read as
  single-label class ids).
- AP@all = (1/R) sum_{relevant items} P@rank; a query with R = 0 has AP 0 and is counted in
  ``queries_without_relevant``. mAP is the mean over all queries.
- map@K (bitrieve default, = protocol ``deephash``): AP over the top-K positions normalised by the number of relevant
  items in the top K. Protocol ``dcmh``: AP over the first min(K, R) relevant items of the whole ranking.
- p@h<=2: precision of the items within Hamming radius 2, 0 for a query that retrieves nothing; PR curve: the same
  precision (mean over all queries) and the recall (mean over queries with R > 0) at every radius 0..bits.

Memory bound: never an (n_query x N) matrix. Queries go in chunks of ``chunk`` (default 4096); per chunk
2 x chunk x (bits+1) int64 histograms plus chunk x (#thresholds) floats; 6 bytes x N scratch per thread; plus the
packed inputs (N x ceil(bits/64) + N x ceil(labels/64) words), and while packing, a few bytes per code bit of
temporaries (N x bits bool arrays). NUS-WIDE scale (2,000 x 184,577, 64 bits): 0.025 GiB peak RSS growth measured
(benchmarks/eval_speed.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import digamma

from bitrieve.codes import as_numpy, pack_bits
from bitrieve.tasks import TASKS

from . import _kernels
from .hamming import Codes, check_same_bits
from .map_definitions import check_tie, get_map_definition

DEFAULT_CHUNK = 4096


# ---------------------------------------------------------------------------------------------------- inputs

def pack_labels(labels, what: str = "labels") -> np.ndarray:
    """Validate multi-hot labels (N, C) (or 1-d int class ids) and pack them into uint64 words (N, ceil(C/64)),
    label j as bit j (``bitrieve.codes.pack_bits``: the codes' layout, so one AND of words tests a shared label)."""
    a = as_numpy(labels, what)
    if a.ndim == 1:
        if a.size == 0:
            raise ValueError(f"{what}: empty input")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{what}: 1-d labels must be integer class ids, got dtype {a.dtype}")
        if a.min() < 0:
            raise ValueError(f"{what}: class ids must be >= 0, found {a.min()}")
        onehot = np.zeros((a.shape[0], int(a.max()) + 1), bool)
        onehot[np.arange(a.shape[0]), a] = True
        a = onehot
    if a.ndim != 2:
        raise ValueError(f"{what}: expected multi-hot labels of shape (items, classes), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what}: empty input, shape {a.shape}")
    if a.dtype != np.bool_:
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{what}: labels must be numeric 0/1, got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"{what}: labels contain NaN or inf")
        if not ((a == 0) | (a == 1)).all():
            raise ValueError(f"{what}: labels must be multi-hot 0/1, found values outside {{0, 1}}")
        a = a != 0
    return pack_bits(a)


def _pair_labels(query_labels, db_labels, n_query: int, n_db: int) -> tuple[np.ndarray, np.ndarray]:
    ql = as_numpy(query_labels, "query labels")
    dl = as_numpy(db_labels, "database labels")
    if ql.ndim == 1 and dl.ndim == 1:  # class ids: one-hot over a shared class range
        both = pack_labels(np.concatenate([ql, dl]), "labels")
        qp, dp = both[: len(ql)], both[len(ql):]
    else:
        qp, dp = pack_labels(ql, "query labels"), pack_labels(dl, "database labels")
        if ql.shape[1] != dl.shape[1]:
            raise ValueError(f"label width mismatch: query labels have {ql.shape[1]} classes, "
                             f"database labels {dl.shape[1]}")
    if len(qp) != n_query:
        raise ValueError(f"query labels have {len(qp)} rows but there are {n_query} query codes")
    if len(dp) != n_db:
        raise ValueError(f"database labels have {len(dp)} rows but there are {n_db} database codes")
    return qp, dp


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"K must be a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"K must be a positive integer, got {k}")
    return int(k)


@lru_cache(maxsize=4)
def _harmonic(n: int) -> np.ndarray:
    """H_0..H_n (H_m = sum_{i<=m} 1/i) to ~1 ulp via digamma: H_m = psi(m+1) + Euler's gamma."""
    h = digamma(np.arange(1, n + 2, dtype=np.float64)) + np.euler_gamma
    h[0] = 0.0
    return h


def default_pn_grid(n_db: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... below N, then N: the top-N precision curve's x values."""
    grid, base = [], 1
    while base < n_db:
        grid += [m * base for m in (1, 2, 5) if m * base < n_db]
        base *= 10
    return grid + [n_db]


# ---------------------------------------------------------------------------------------------------- core

def ranking_summary(query_codes, db_codes, query_labels, db_labels, top_ks=(), first_ks=(), pn=(),
                    tie: str = "stable", chunk: int = DEFAULT_CHUNK) -> dict:
    """All ranking statistics of one (query set, database) pair, as plain Python numbers.

    Returns ``{"n_query", "n_database", "bits", "queries_without_relevant", "map@all", "top": {K: mAP@K (top-K
    definition)}, "first": {K: mAP@K (first min(K, R) relevant)}, "p@n": [P@n for n in pn], "pr": {"radius",
    "precision", "recall"}, "p@h<=2"}``. See the module docstring for the definitions.
    """
    check_tie(tie)
    q = Codes.pack(query_codes, "query codes")
    d = Codes.pack(db_codes, "database codes")
    check_same_bits(q, d)
    ql, dl = _pair_labels(query_labels, db_labels, len(q), len(d))
    nq, n, bits = len(q), len(d), d.bits
    top_ks = [_check_k(k) for k in top_ks]
    first_ks = [_check_k(k) for k in first_ks]
    pn = [_check_k(k) for k in pn]
    # positional thresholds (rank <= K) shared by top-K mAP and P@n; K > N behaves as K = N
    pos_thr = np.unique(np.array([min(k, n) for k in top_ks + pn], np.int64))
    rr_thr = np.unique(np.array(first_ks, np.int64))
    pos_index = {k: int(np.searchsorted(pos_thr, min(k, n))) for k in top_ks + pn}
    rr_index = {k: int(np.searchsorted(rr_thr, k)) for k in first_ks}
    ranks = np.arange(n + 1)
    # small index types keep these rank -> threshold tables cache-resident (they are read once per relevant item)
    bin_type = np.int16 if max(len(pos_thr), len(rr_thr)) < 2**15 - 1 else np.int32
    pos_bin = np.searchsorted(pos_thr, ranks, side="left").astype(bin_type)
    rr_bin = np.searchsorted(rr_thr, ranks, side="left").astype(bin_type)
    harm = _harmonic(n) if tie == "tie-averaged" else None

    sums = {"ap": 0.0, "top": np.zeros(len(pos_thr)), "pcnt": np.zeros(len(pos_thr)),
            "first": np.zeros(len(rr_thr)), "prec": np.zeros(bits + 1), "rec": np.zeros(bits + 1)}
    no_rel = 0
    for a in range(0, nq, chunk):
        qw, qlw = q.words[a:a + chunk], ql[a:a + chunk]
        if tie == "stable":
            cnt_all, cnt_rel, ap_sum, pos_cnt, pos_sum, rr_sum = _kernels.stable_stats(
                qw, d.words, qlw, dl, bits, pos_bin, len(pos_thr), rr_bin, len(rr_thr))
            with np.errstate(invalid="ignore", divide="ignore"):
                top = np.where(pos_cnt > 0, pos_sum / np.maximum(pos_cnt, 1), 0.0)
        else:
            cnt_all, cnt_rel = _kernels.histograms(qw, d.words, qlw, dl, bits)
            ap_sum, top, pos_cnt, rr_sum = _kernels.tie_averaged_stats(cnt_all, cnt_rel, harm, pos_thr, rr_thr)
        R = cnt_rel.sum(axis=1)
        has = R > 0
        no_rel += int((~has).sum())
        Rs = np.maximum(R, 1)
        sums["ap"] += float(np.sum(np.where(has, ap_sum / Rs, 0.0)))
        sums["top"] += top.sum(axis=0)
        sums["pcnt"] += (pos_cnt / pos_thr[None, :]).sum(axis=0)
        L = np.minimum(rr_thr[None, :], Rs[:, None])
        sums["first"] += np.where(has[:, None], rr_sum / L, 0.0).sum(axis=0)
        cum_all = np.cumsum(cnt_all, axis=1)
        cum_rel = np.cumsum(cnt_rel, axis=1)
        sums["prec"] += (cum_rel / np.maximum(cum_all, 1)).sum(axis=0)
        sums["rec"] += (cum_rel[has] / R[has, None]).sum(axis=0)
    n_rel = nq - no_rel
    precision = (sums["prec"] / nq).tolist()
    return {
        "n_query": nq, "n_database": n, "bits": bits, "queries_without_relevant": no_rel,
        "map@all": sums["ap"] / nq,
        "top": {k: float(sums["top"][pos_index[k]] / nq) for k in top_ks},
        "first": {k: float(sums["first"][rr_index[k]] / nq) for k in first_ks},
        "p@n": [float(sums["pcnt"][pos_index[k]] / nq) for k in pn],
        "pr": {"radius": list(range(bits + 1)), "precision": precision,
               "recall": (sums["rec"] / max(n_rel, 1)).tolist()},
        "p@h<=2": precision[min(2, bits)],
    }


# ---------------------------------------------------------------------------------------------------- public API

def map_at_k(query_codes, db_codes, query_labels, db_labels, k: int | None = None, tie: str = "stable",
             map_definition: str | None = None) -> float:
    """mAP of Hamming ranking; ``k=None`` is mAP@all.

    ``query_codes`` (nq, bits), ``db_codes`` (N, bits): ±1 or 0/1 arrays (or ``Codes``); labels: multi-hot
    (nq, C), (N, C) (relevant = at least one shared label). ``tie``: "stable" | "tie-averaged".
    ``map_definition`` (eval/map_definitions.py): None / "bitrieve" / "deephash" / "ucmfh" (AP over the top K,
    divided by the relevant items in the top K) or "dcmh" / "calc_map_k" (AP over the first min(K, R) relevant
    items; old name "djsrh"). Every definition gives mAP@all for k=None.
    """
    p = get_map_definition(map_definition)
    if k is None:
        return float(ranking_summary(query_codes, db_codes, query_labels, db_labels, tie=tie)["map@all"])
    k = _check_k(k)
    if p.map_k == "top":
        return ranking_summary(query_codes, db_codes, query_labels, db_labels, top_ks=[k], tie=tie)["top"][k]
    return ranking_summary(query_codes, db_codes, query_labels, db_labels, first_ks=[k], tie=tie)["first"][k]


def evaluate_retrieval(query: dict, database: dict, query_labels, db_labels, tasks=("i2t", "t2i"), ks=(50,),
                       map_all: bool = True, tie: str = "stable", map_definitions=(), curves: bool = True,
                       pn_grid=None) -> dict:
    """Evaluate every task whose two modalities are present.

    ``query`` / ``database``: {"image": codes, "text": codes} (±1 or 0/1, any subset of modalities; both
    modalities of one set share that set's labels). Tasks: i2t (query image -> database text), t2i, i2i, t2t.
    Returns ``{task: {"map@all", "map@K"..., "p@h<=2", "queries_without_relevant"},
    "curves": {task: {"pr": {"radius", "precision", "recall"}, "p@n": {"n", "precision"}}},
    "map_definitions": {name: {task: {"map@K": ...}}}}`` (one block per name of ``map_definitions``: mAP@K under that
    definition, the results.json ``protocols`` block); all values plain floats / ints / lists (JSON-ready).
    """
    check_tie(tie)
    ks = [_check_k(k) for k in ks]
    protos = [get_map_definition(name) for name in map_definitions]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected some of {list(TASKS)}")
    out: dict = {}
    curve_out: dict = {}
    proto_out: dict = {p.name: {} for p in protos}
    need_first = any(p.map_k == "first_relevant" for p in protos)
    packed_q = {m: Codes.pack(c, f"query[{m!r}]") for m, c in query.items()}
    packed_d = {m: Codes.pack(c, f"database[{m!r}]") for m, c in database.items()}
    for task in tasks:
        qm, dm = TASKS[task]
        if qm not in packed_q or dm not in packed_d:
            continue
        n_db = len(packed_d[dm])
        pn = (list(pn_grid) if pn_grid is not None else default_pn_grid(n_db)) if curves else []
        s = ranking_summary(packed_q[qm], packed_d[dm], query_labels, db_labels, top_ks=ks,
                            first_ks=ks if need_first else (), pn=pn, tie=tie)
        res = {}
        if map_all:
            res["map@all"] = s["map@all"]
        for k in ks:
            res[f"map@{k}"] = s["top"][k]
        res["p@h<=2"] = s["p@h<=2"]
        res["queries_without_relevant"] = s["queries_without_relevant"]
        out[task] = res
        if curves:
            curve_out[task] = {"pr": s["pr"], "p@n": {"n": pn, "precision": s["p@n"]}}
        for p in protos:
            src = s["top"] if p.map_k == "top" else s["first"]
            proto_out[p.name][task] = {f"map@{k}": src[k] for k in ks}
    out["curves"] = curve_out
    out["map_definitions"] = proto_out
    return out
