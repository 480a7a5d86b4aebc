"""Exact top-k Hamming search over packed uint64 codes (numba, parallel over queries).

One pass over the database per query, no sort, no per-item heap:
- the database is read in blocks of 256 codes, word-major (one contiguous uint64 column per code word), so the XOR +
  popcount of a block vectorises (LLVM emits vector popcounts on CPUs that have them); the block's distances go to
  a small buffer together with their minimum;
- a running bound ``B`` (the smallest distance with at least k candidates at or below it) skips every block whose
  minimum is >= B; items of the other blocks with distance < B become candidates (position, distance) and
  update a histogram of candidate distances, from which B shrinks as candidates arrive;
- at the end the histogram's prefix sums give each distance bucket's first output slot, and one pass over the
  candidates (which are in database order) fills the k slots: all items below the final bound, then items at the
  bound in database order until the k slots are full.
The result is sorted by (distance, database position), i.e. ties are broken by database order (stable), the rule of
``bitrieve.eval``. Work: O(N · words) per query, plus O(candidates). Memory: the codes (a word-major copy when codes
have more than 64 bits), and per thread a 256-entry block buffer, a histogram and a candidate list of
max(4k, 1024) entries (doubled when needed).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from bitrieve.codes import Codes
from bitrieve.codes.popcount import popcount64
from bitrieve.errors import BinaryIndexError
from bitrieve.threads import set_numba_threads

set_numba_threads()  # numba's workqueue layer and the package's thread count, before any kernel runs (threads.py)

BLOCK = 256


@njit(inline="always", cache=True)
def _block_distances(q, db_t, b, m, acc):
    """Distances of codes b..b+m-1 into acc[:m]; returns their minimum. 1-d slices keep the loops vectorisable."""
    col = db_t[0, b:b + m]
    q0 = q[0]
    mn = np.uint64(0xFFFF)
    if db_t.shape[0] == 1:
        for j in range(m):
            d = popcount64(q0 ^ col[j])
            acc[j] = d
            mn = min(mn, d)
        return mn
    for j in range(m):
        acc[j] = popcount64(q0 ^ col[j])
    for w in range(1, db_t.shape[0]):
        col = db_t[w, b:b + m]
        qw = q[w]
        for j in range(m):
            acc[j] += np.uint16(popcount64(qw ^ col[j]))
    for j in range(m):
        mn = min(mn, np.uint64(acc[j]))
    return mn


@njit(cache=True)
def _topk_one(q, db_t, k, hist, acc, cand_pos, cand_dist, out_pos, out_dist):
    """Top-k of one query into out_pos/out_dist; False if the candidate list overflowed (caller retries bigger)."""
    n = db_t.shape[1]
    hist[:] = 0
    bound = np.int64(hist.shape[0] - 1)  # > any distance: accept everything until k candidates exist
    below = np.int64(0)  # candidates with distance < bound
    m = 0
    cap = cand_pos.shape[0]
    for b in range(0, n, BLOCK):
        size = min(BLOCK, n - b)
        if np.int64(_block_distances(q, db_t, b, size, acc)) >= bound:
            continue
        for j in range(size):
            d = np.int64(acc[j])
            if d < bound:
                if m == cap:  # drop candidates the bound has excluded since they arrived
                    w = 0
                    for r in range(m):
                        if cand_dist[r] <= bound:
                            cand_pos[w] = cand_pos[r]
                            cand_dist[w] = cand_dist[r]
                            w += 1
                    m = w
                    if m == cap:
                        return False
                cand_pos[m] = b + j
                cand_dist[m] = d
                m += 1
                hist[d] += 1
                below += 1
                while below >= k:  # shrink the bound: smallest t with count(distance <= t) >= k
                    bound -= 1
                    below -= hist[bound]
    start = 0
    for t in range(min(bound, hist.shape[0] - 1) + 1):
        c = hist[t]
        hist[t] = start
        start += c
    filled = 0
    for r in range(m):
        d = np.int64(cand_dist[r])
        if d <= bound:
            p = hist[d]
            if p < k:
                out_pos[p] = cand_pos[r]
                out_dist[p] = d
                hist[d] = p + 1
                filled += 1
                if filled == k:
                    break
    return True


@njit(parallel=True, cache=True)
def _topk_kernel(queries, db_t, k, n_groups, out_pos, out_dist):
    nq = queries.shape[0]
    max_d = db_t.shape[0] * 64
    for g in prange(n_groups):
        hist = np.zeros(max_d + 2, np.int64)
        acc = np.empty(BLOCK, np.uint16)
        cap = max(4 * k, 1024)
        cand_pos = np.empty(cap, np.int64)
        cand_dist = np.empty(cap, np.int16)
        for qi in range(g * nq // n_groups, (g + 1) * nq // n_groups):
            while not _topk_one(queries[qi], db_t, k, hist, acc, cand_pos, cand_dist, out_pos[qi], out_dist[qi]):
                cap *= 2
                cand_pos = np.empty(cap, np.int64)
                cand_dist = np.empty(cap, np.int16)


def word_major(db: Codes) -> np.ndarray:
    """(words, N) contiguous view/copy of the codes: a view for <= 64 bits, a copy (N · 8 · words bytes) above."""
    return np.ascontiguousarray(db.words.T)


def exact_topk(queries: Codes, db: Codes, k: int, chunk: int = 4096, progress: bool = False,
               db_t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k database positions and Hamming distances for every query, ties in database order.

    Returns ``(positions (Q, k') int64, distances (Q, k') int32)`` with ``k' = min(k, N)``. Queries are processed in
    chunks of ``chunk`` so the outputs of one kernel call stay bounded. ``db_t``: a cached ``word_major(db)``.
    """
    if queries.bits != db.bits:
        raise BinaryIndexError(f"query codes have {queries.bits} bits, the database has {db.bits}")
    if k < 1:
        raise BinaryIndexError(f"k must be >= 1, got {k}")
    n = len(db)
    k = min(int(k), n)
    nq = len(queries)
    pos = np.empty((nq, k), np.int64)
    dist = np.empty((nq, k), np.int32)
    if nq == 0 or k == 0:
        return pos, dist
    if db_t is None:
        db_t = word_major(db)
    starts = range(0, nq, chunk)
    if progress and len(starts) > 1:
        from bitrieve.console import progress as progress_bar

        starts = progress_bar(starts, desc="search", unit="chunk")
    for s in starts:
        e = min(s + chunk, nq)
        qw = np.ascontiguousarray(queries.words[s:e])
        _topk_kernel(qw, db_t, k, max(1, min(get_num_threads(), e - s)), pos[s:e], dist[s:e])
    return pos, dist


# --- radius search: every item within Hamming distance r -------------------------------------------------------------
@njit(parallel=True, cache=True)
def _radius_kernel(queries, db_t, r, fill, counts, offsets, out_pos, out_dist):
    """Items within distance r of each query (blocks whose minimum exceeds r are skipped).

    ``fill=False``: counts[q] = the number of hits. ``fill=True``: query q's hits into out_*[offsets[q]:offsets[q+1]],
    sorted by (distance, database position): collected in database order, then placed by a stable counting sort on
    the distance."""
    n = db_t.shape[1]
    for qi in prange(queries.shape[0]):
        acc = np.empty(BLOCK, np.uint16)
        size_q = offsets[qi + 1] - offsets[qi] if fill else 0
        pos = np.empty(size_q, np.int64)
        dist = np.empty(size_q, np.int32)
        hist = np.zeros(r + 1, np.int64)
        m = 0
        for b in range(0, n, BLOCK):
            size = min(BLOCK, n - b)
            if np.int64(_block_distances(queries[qi], db_t, b, size, acc)) > r:
                continue
            for j in range(size):
                d = np.int64(acc[j])
                if d <= r:
                    if fill:
                        pos[m] = b + j
                        dist[m] = d
                        hist[d] += 1
                    m += 1
        if not fill:
            counts[qi] = m
            continue
        first = offsets[qi]
        for t in range(r + 1):  # bucket t starts after every hit at a smaller distance
            c = hist[t]
            hist[t] = first
            first += c
        for i in range(m):
            slot = hist[dist[i]]
            out_pos[slot] = pos[i]
            out_dist[slot] = dist[i]
            hist[dist[i]] += 1


def exact_radius(queries: Codes, db: Codes, radius: int, chunk: int = 4096,
                 db_t: np.ndarray | None = None, max_results: int = 100_000_000
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every database item within Hamming distance ``radius`` of each query, exact.

    Returns ``(offsets (Q + 1,) int64, positions int64, distances int32)``: query q's hits are
    ``positions[offsets[q]:offsets[q + 1]]``, sorted by (distance, database position) as `exact_topk` orders them.
    Two passes per chunk of queries (count, then fill), so memory is the output plus one chunk's hits per thread.
    More than ``max_results`` hits in total is refused (a radius near the code length returns the whole database
    for every query).
    """
    if queries.bits != db.bits:
        raise BinaryIndexError(f"query codes have {queries.bits} bits, the database has {db.bits}")
    if radius < 0:
        raise BinaryIndexError(f"radius must be >= 0, got {radius}")
    radius = min(int(radius), db.bits)
    nq = len(queries)
    if db_t is None:
        db_t = word_major(db)
    counts = np.zeros(nq, np.int64)
    none_pos, none_dist = np.empty(0, np.int64), np.empty(0, np.int32)
    for s in range(0, nq, chunk):
        _radius_kernel(np.ascontiguousarray(queries.words[s:s + chunk]), db_t, radius, False, counts[s:s + chunk],
                       np.zeros(min(chunk, nq - s) + 1, np.int64), none_pos, none_dist)
    offsets = np.zeros(nq + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    if total > max_results:
        raise BinaryIndexError(f"radius {radius}: {total:,} hits for {nq:,} queries exceed max_results="
                               f"{max_results:,}; use a smaller radius (or top-k search)")
    pos = np.empty(total, np.int64)
    dist = np.empty(total, np.int32)
    for s in range(0, nq, chunk):
        e = min(s + chunk, nq)
        base = offsets[s]
        _radius_kernel(np.ascontiguousarray(queries.words[s:e]), db_t, radius, True, counts[s:e],
                       offsets[s:e + 1] - base, pos[base:offsets[e]], dist[base:offsets[e]])
    return offsets, pos, dist
