"""Recall@K for paired retrieval (image <-> caption), real-valued or binary, VSE++ bookkeeping.

A query is correct at K if ANY database item with the query's group id is among the top K (VSE++, Faghri et al.
2018, Sec. 4: an image query counts the best-ranked of its 5 captions). Scores: cosine similarity (default),
inner product, or minus the Hamming distance (``binary=True``). Ties (common for binary codes): ``stable`` ranks the
best relevant item after every strictly better item and after equal-score items with a lower database index (the
rule of open_clip's retrieval metric); ``tie-averaged`` is the probability of a hit under a uniformly random order
inside the tie group, in closed form. Values are percentages (0..100), as the cross-modal retrieval literature
reports them; ``rsum`` is the sum of the requested R@K (default R@1, R@5, R@10) of both directions.
Memory: ``chunk`` queries x N scores at a time (float32), default chosen to stay near 64 MiB.
"""

from __future__ import annotations

import math

import numpy as np

from bitrieve.codes import as_numpy

from .hamming import Codes, hamming_distance
from .map_definitions import check_tie


def _embeddings(x, what: str) -> np.ndarray:
    a = as_numpy(x, what)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d array (items, dims), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what}: empty input, shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        raise ValueError(f"{what}: must be numeric, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: contains NaN or inf")
    return a


def _groups(g, n: int, what: str) -> np.ndarray:
    if g is None:
        return np.arange(n)
    g = as_numpy(g, what)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"{what}: expected shape ({n},), got {g.shape}")
    return g


def _hit_probability(K: int, better: np.ndarray, tied: np.ndarray, tied_rel: np.ndarray) -> np.ndarray:
    """P(at least one of tied_rel relevant items lands in the first K - better of `tied` shuffled slots)."""
    m = K - better
    out = np.where(m >= tied, 1.0, 0.0)
    part = (m > 0) & (m < tied)
    for i in np.flatnonzero(part):
        g, r, mm = int(tied[i]), int(tied_rel[i]), int(m[i])
        if g - r < mm:
            out[i] = 1.0
        else:  # 1 - C(g - r, m) / C(g, m)
            out[i] = 1.0 - math.exp(math.lgamma(g - r + 1) - math.lgamma(g - r - mm + 1)
                                    - math.lgamma(g + 1) + math.lgamma(g - mm + 1))
    return out


def recall_at_k(query_emb, db_emb, query_groups=None, db_groups=None, ks=(1, 5, 10), binary: bool = False,
                metric: str = "cosine", tie: str = "stable", chunk: int | None = None) -> dict:
    """{"r@K": percent} for each K. ``query_groups`` / ``db_groups``: id arrays (default: item i <-> item i,
    which needs as many queries as database items). ``binary=True``: ±1 / 0/1 codes ranked by Hamming distance;
    otherwise ``metric`` "cosine" or "ip" (inner product)."""
    check_tie(tie)
    ks = list(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"K must be a positive integer, got {k!r}")
    if binary:
        q, d = Codes.pack(query_emb, "query codes"), Codes.pack(db_emb, "database codes")
        nq, n = len(q), len(d)
    else:
        if metric not in ("cosine", "ip"):
            raise ValueError(f"unknown similarity metric {metric!r}; expected 'cosine' or 'ip'")
        q = _embeddings(query_emb, "query embeddings").astype(np.float32)
        d = _embeddings(db_emb, "database embeddings").astype(np.float32)
        if q.shape[1] != d.shape[1]:
            raise ValueError(f"dimension mismatch: query embeddings have {q.shape[1]} dims, database {d.shape[1]}")
        if metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        nq, n = q.shape[0], d.shape[0]
    if query_groups is None and db_groups is None and nq != n:
        raise ValueError(f"{nq} queries but {n} database items: pass query_groups / db_groups to pair them")
    qg = _groups(query_groups, nq, "query_groups")
    dg = _groups(db_groups, n, "db_groups")
    chunk = chunk or max(1, (64 << 20) // (4 * n))
    hits = np.zeros(len(ks))
    missing = 0
    for a in range(0, nq, chunk):
        if binary:
            s = -hamming_distance(Codes(q.words[a:a + chunk], q.bits), d).astype(np.float32)
        else:
            s = q[a:a + chunk] @ d.T
        rel = qg[a:a + chunk, None] == dg[None, :]
        has = rel.any(axis=1)
        missing += int((~has).sum())
        best = np.where(rel, s, -np.inf).max(axis=1)
        first = np.argmax(rel & (s == best[:, None]), axis=1)  # lowest index among the best relevant items
        better = (s > best[:, None]).sum(axis=1)
        if tie == "stable":
            equal_before = ((s == best[:, None]) & (np.arange(n)[None, :] < first[:, None])).sum(axis=1)
            rank = better + equal_before  # 0-based rank of the first relevant item
            for t, k in enumerate(ks):
                hits[t] += np.sum(has & (rank < k))
        else:
            tied = (s == best[:, None]).sum(axis=1)
            tied_rel = (rel & (s == best[:, None])).sum(axis=1)
            for t, k in enumerate(ks):
                hits[t] += np.sum(np.where(has, _hit_probability(int(k), better, tied, tied_rel), 0.0))
    if missing:
        raise ValueError(f"{missing} of {nq} queries have no database item with the same group id "
                         "(check query_groups / db_groups)")
    return {f"r@{k}": float(100.0 * hits[t] / nq) for t, k in enumerate(ks)}


def cross_modal_recall(image_emb, text_emb, image_groups=None, text_groups=None, ks=(1, 5, 10),
                       binary: bool = False, metric: str = "cosine", tie: str = "stable") -> dict:
    """Both directions and rsum: {"i2t": {"r@1", ...}, "t2i": {...}, "rsum": float}.

    5 captions per image (COCO / Flickr30K): ``image_groups = np.arange(n_images)``,
    ``text_groups = np.repeat(np.arange(n_images), 5)`` (or any id arrays that pair them). Without groups and with
    a multiple of n_images texts, text i is taken to belong to image i // (n_texts / n_images) (VSE++ order)."""
    if image_groups is None and text_groups is None:
        n_img = as_numpy(image_emb, "image embeddings").shape[0]
        n_txt = as_numpy(text_emb, "text embeddings").shape[0]
        if n_txt % n_img == 0 and n_txt != n_img:  # captions grouped per image, in image order
            image_groups, text_groups = np.arange(n_img), np.repeat(np.arange(n_img), n_txt // n_img)
    kw = dict(ks=ks, binary=binary, metric=metric, tie=tie)
    i2t = recall_at_k(image_emb, text_emb, image_groups, text_groups, **kw)
    t2i = recall_at_k(text_emb, image_emb, text_groups, image_groups, **kw)
    return {"i2t": i2t, "t2i": t2i, "rsum": float(sum(i2t.values()) + sum(t2i.values()))}
