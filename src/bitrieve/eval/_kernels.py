"""numba kernels behind ``bitrieve.eval`` (private; the public API is in hamming.py / metrics.py).

All kernels work on codes packed into uint64 words (bit i of a code is bit i % 64 of word i // 64) and on labels
packed the same way (relevant = at least one shared label bit). ``parallel=True`` splits work over queries with
``prange``; ``cache=True`` keeps the compiled machine code on disk so later imports do not pay the compile time.

Exact stable-tie statistics need no sort: per query, one pass computes every database item's
Hamming distance and relevance and the two histograms (all items, relevant items) over the distances 0..bits;
prefix sums give each distance bucket's first rank; a second pass in database order hands out ranks, which is
exactly the order of a stable sort by distance. That is O(N + bits) per query and O(N) scratch memory per thread.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from bitrieve.codes.popcount import popcount64
from bitrieve.threads import set_numba_threads

set_numba_threads()  # numba's workqueue layer and the package's thread count, before any kernel runs (threads.py)

_ZERO = np.uint64(0)


@nb.njit(inline="always", cache=True)
def _distance(qw, i, dw, j):
    d = 0
    for w in range(qw.shape[1]):
        d += popcount64(qw[i, w] ^ dw[j, w])
    return d


@nb.njit(inline="always", cache=True)
def _shares_label(ql, i, dl, j):
    for w in range(ql.shape[1]):
        if (ql[i, w] & dl[j, w]) != _ZERO:
            return 1
    return 0


@nb.njit(parallel=True, cache=True)
def hamming_matrix(qw, dw):
    """(nq, N) uint16 Hamming distances. Memory: the output itself; callers chunk the queries."""
    nq = qw.shape[0]
    n = dw.shape[0]
    out = np.empty((nq, n), np.uint16)
    for i in nb.prange(nq):
        for j in range(n):
            out[i, j] = _distance(qw, i, dw, j)
    return out


@nb.njit(parallel=True, cache=True)
def rank_stable(qw, dw, nbits, k):
    """(nq, k) int64 database indices by ascending distance, ties by database order (counting sort)."""
    nq = qw.shape[0]
    n = dw.shape[0]
    out = np.empty((nq, k), np.int64)
    for i in nb.prange(nq):
        dist = np.empty(n, np.uint16)
        start = np.zeros(nbits + 2, np.int64)
        for j in range(n):
            d = _distance(qw, i, dw, j)
            dist[j] = d
            start[d + 1] += 1
        for b in range(1, nbits + 2):
            start[b] += start[b - 1]
        for j in range(n):
            d = dist[j]
            p = start[d]
            start[d] = p + 1
            if p < k:
                out[i, p] = j
    return out


@nb.njit(parallel=True, cache=True)
def histograms(qw, dw, ql, dl, nbits):
    """Per query: number of all / relevant database items at each distance 0..nbits, (nq, nbits+1) int64 each."""
    nq = qw.shape[0]
    n = dw.shape[0]
    nb1 = nbits + 1
    cnt_all = np.zeros((nq, nb1), np.int64)
    cnt_rel = np.zeros((nq, nb1), np.int64)
    for i in nb.prange(nq):
        ca = np.zeros(nb1, np.int64)
        cr = np.zeros(nb1, np.int64)
        if qw.shape[1] == 1 and ql.shape[1] == 1:
            q0 = qw[i, 0]
            l0 = ql[i, 0]
            for j in range(n):
                d = popcount64(q0 ^ dw[j, 0])
                ca[d] += 1
                cr[d] += 1 if (l0 & dl[j, 0]) != _ZERO else 0
        else:
            for j in range(n):
                d = _distance(qw, i, dw, j)
                ca[d] += 1
                cr[d] += _shares_label(ql, i, dl, j)
        cnt_all[i] = ca
        cnt_rel[i] = cr
    return cnt_all, cnt_rel


@nb.njit(inline="always", cache=True)
def _first_pass(qw, ql, i, dw, dl, ca, cr, rd, ro):
    """Distances and relevance of every database item for query i: fills the histograms ca (all) and cr
    (relevant) and, for the relevant items in database order, their distance rd[m] and their offset ro[m] inside
    their distance bucket (= items at that distance with a lower index). Returns the number of relevant items.
    Branch-free: every item is written at slot m, and m only advances for a relevant item."""
    n = dw.shape[0]
    m = 0
    if qw.shape[1] == 1 and ql.shape[1] == 1:  # the common case: <= 64 bits, <= 64 labels
        q0 = qw[i, 0]
        l0 = ql[i, 0]
        for j in range(n):
            d = popcount64(q0 ^ dw[j, 0])
            r = 1 if (l0 & dl[j, 0]) != _ZERO else 0
            rd[m] = d
            ro[m] = ca[d]
            ca[d] += 1
            cr[d] += r
            m += r
    else:
        for j in range(n):
            d = _distance(qw, i, dw, j)
            r = _shares_label(ql, i, dl, j)
            rd[m] = d
            ro[m] = ca[d]
            ca[d] += 1
            cr[d] += r
            m += r
    return m


@nb.njit(parallel=True, cache=True)
def stable_stats(qw, dw, ql, dl, nbits, pos_bin, n_pos_thr, rr_bin, n_rr_thr):
    """Exact statistics of the stable ranking (ties by database order) for every query.

    pos_bin[p] (p = 1-based rank, 0..N) is the index of the smallest position threshold >= p (n_pos_thr if none);
    rr_bin[r] likewise for thresholds on the rank r among relevant items. Returns
      cnt_all, cnt_rel: (nq, nbits+1) distance histograms;
      ap_sum: (nq,) sum over relevant items of precision at their rank (AP@all = ap_sum / R);
      pos_cnt, pos_sum: (nq, n_pos_thr) number of relevant items with rank <= threshold and the sum of their
        precisions; rr_sum: (nq, n_rr_thr) sum of precisions of relevant items whose relevant-rank <= threshold.
    The rank of a relevant item is (items at smaller distances) + (its offset in its bucket) + 1, so after the
    first pass only the relevant items are visited again. Scratch memory: 6 bytes x (N + 1) per block of queries
    (at most 64 blocks, one per thread at a time).
    """
    nq = qw.shape[0]
    n = dw.shape[0]
    nb1 = nbits + 1
    cnt_all = np.zeros((nq, nb1), np.int64)
    cnt_rel = np.zeros((nq, nb1), np.int64)
    ap_sum = np.zeros(nq, np.float64)
    pos_cnt = np.zeros((nq, n_pos_thr), np.int64)
    pos_sum = np.zeros((nq, n_pos_thr), np.float64)
    rr_sum = np.zeros((nq, n_rr_thr), np.float64)
    n_blocks = min(nq, 64)
    for blk in nb.prange(n_blocks):
        rd = np.empty(n + 1, np.uint16)
        ro = np.empty(n + 1, np.int32)
        ca = np.empty(nb1, np.int64)
        cr = np.empty(nb1, np.int64)
        first = np.empty(nb1, np.int64)
        rnxt = np.empty(nb1, np.int64)
        pc = np.empty(n_pos_thr + 1, np.int64)
        ps = np.empty(n_pos_thr + 1, np.float64)
        rsum = np.empty(n_rr_thr + 1, np.float64)
        for i in range(blk * nq // n_blocks, (blk + 1) * nq // n_blocks):
            ca[:] = 0
            cr[:] = 0
            m = _first_pass(qw, ql, i, dw, dl, ca, cr, rd, ro)
            s = 0
            rs = 0
            for b in range(nb1):
                first[b] = s
                rnxt[b] = rs
                s += ca[b]
                rs += cr[b]
                cnt_all[i, b] = ca[b]
                cnt_rel[i, b] = cr[b]
            if m == 0:
                continue
            pc[:] = 0
            ps[:] = 0.0
            rsum[:] = 0.0
            acc = 0.0
            for t in range(m):
                d = rd[t]
                p = first[d] + ro[t] + 1
                rr = rnxt[d] + 1
                rnxt[d] = rr
                prec = rr / p
                acc += prec
                # items beyond every threshold go to no bin (skipping them shortens the memory-carried chains)
                bp = pos_bin[p]
                if bp < n_pos_thr:
                    pc[bp] += 1
                    ps[bp] += prec
                br = rr_bin[rr]
                if br < n_rr_thr:
                    rsum[br] += prec
            ap_sum[i] = acc
            c = 0
            sp = 0.0
            for t in range(n_pos_thr):
                c += pc[t]
                sp += ps[t]
                pos_cnt[i, t] = c
                pos_sum[i, t] = sp
            sr = 0.0
            for t in range(n_rr_thr):
                sr += rsum[t]
                rr_sum[i, t] = sr
    return cnt_all, cnt_rel, ap_sum, pos_cnt, pos_sum, rr_sum


# ----------------------------------------------------------------------------------------------------------------
# Tie-averaged statistics: expectations over a uniformly random order inside each group of equal distances,
# in closed form from the two histograms. harm[m] = H_m = sum_{i<=m} 1/i (harm[0] = 0).


@nb.njit(inline="always", cache=True)
def _tie_block_sum(harm, s, m, r_before, y):
    """E[sum of precisions of the relevant items among m consecutive tied slots (after s earlier items and
    r_before earlier relevant items), given that y of the m slots are relevant and the order is uniform].

    Slot j (1..m) is relevant with probability y/m; given that, the number of other relevant slots before it has
    mean (j-1)(y-1)/(m-1). Sums of 1/(s+j) and (j-1)/(s+j) are harmonic-number differences.
    """
    if y == 0:
        return 0.0
    h = harm[s + m] - harm[s]
    val = (r_before + 1.0) * h
    if m > 1:
        val += (y - 1.0) / (m - 1.0) * (m - (s + 1.0) * h)
    return val * y / m


@nb.njit(inline="always", cache=True)
def _log_comb(a, b):
    return math.lgamma(a + 1.0) - math.lgamma(b + 1.0) - math.lgamma(a - b + 1.0)


@nb.njit(parallel=True, cache=True)
def tie_averaged_stats(cnt_all, cnt_rel, harm, pos_thr, rr_thr):
    """Tie-averaged counterparts of ``stable_stats`` from the histograms alone.

    Returns ap_sum (nq,) = E[sum of precisions over all relevant items];
    top_map (nq, T) = E[AP@K] with AP@K = (sum of precisions at relevant items in the top K) / (number of
      relevant items in the top K), 0 when there are none (the expectation of the ratio, not a ratio of
      expectations: the straddling tie group's hypergeometric count is summed over exactly);
    pos_cnt (nq, T) = E[number of relevant items in the top K] for K = pos_thr;
    rr_sum (nq, U) = E[sum of precisions of the first min(K, R) relevant items] for K = rr_thr.
    """
    nq = cnt_all.shape[0]
    nb1 = cnt_all.shape[1]
    T = pos_thr.shape[0]
    U = rr_thr.shape[0]
    ap_sum = np.zeros(nq)
    top_map = np.zeros((nq, T))
    pos_cnt = np.zeros((nq, T))
    rr_sum = np.zeros((nq, U))
    for i in nb.prange(nq):
        total_rel = 0
        for b in range(nb1):
            total_rel += cnt_rel[i, b]
        if total_rel == 0:
            continue
        # AP@all
        s = 0
        rb = 0
        acc = 0.0
        for b in range(nb1):
            n = cnt_all[i, b]
            r = cnt_rel[i, b]
            if r > 0:
                acc += _tie_block_sum(harm, s, n, rb, r)
            s += n
            rb += r
        ap_sum[i] = acc
        # positional thresholds: top-K mAP and expected relevant count
        for t in range(T):
            K = pos_thr[t]
            s = 0
            rb = 0
            full = 0.0
            b = 0
            while b < nb1 and s + cnt_all[i, b] <= K:
                n = cnt_all[i, b]
                r = cnt_rel[i, b]
                if r > 0:
                    full += _tie_block_sum(harm, s, n, rb, r)
                s += n
                rb += r
                b += 1
            if b == nb1 or s == K or cnt_rel[i, b] == 0:
                pos_cnt[i, t] = rb
                top_map[i, t] = full / rb if rb > 0 else 0.0
                continue
            # the tie group b straddles rank K: m of its n slots are in the top K, y of them relevant
            n = cnt_all[i, b]
            r = cnt_rel[i, b]
            m = K - s
            pos_cnt[i, t] = rb + r * m / n
            ylo = max(0, m - (n - r))
            yhi = min(m, r)
            log_den = _log_comb(n, m)
            val = 0.0
            for y in range(ylo, yhi + 1):
                if rb + y == 0:
                    continue
                pmf = math.exp(_log_comb(r, y) + _log_comb(n - r, m - y) - log_den)
                val += pmf * (full + _tie_block_sum(harm, s, m, rb, y)) / (rb + y)
            top_map[i, t] = val
        # thresholds on the relevant-rank (first min(K, R) relevant items of the whole ranking)
        for u in range(U):
            L = min(rr_thr[u], total_rel)
            s = 0
            rb = 0
            acc = 0.0
            for b in range(nb1):
                n = cnt_all[i, b]
                r = cnt_rel[i, b]
                if r == 0:
                    s += n
                    continue
                if rb + r <= L:
                    acc += _tie_block_sum(harm, s, n, rb, r)
                else:
                    # only the first t = L - rb relevant items of this tie group count. Slot j is relevant with
                    # probability r/n; given that, Z = relevant items before it ~ Hypergeometric(j-1 draws,
                    # n-1 items, r-1 relevant); it counts if Z <= t-1, with precision (rb+1+Z)/(s+j).
                    # The pmf of Z over z = 0..t-1 is carried from slot to slot (one more draw each time);
                    # mass beyond t-1 never returns, so the truncated vector suffices: O(n * t), no lgamma.
                    tcount = L - rb
                    pmf = np.zeros(tcount + 1)
                    pmf[0] = 1.0
                    for j in range(1, n + 1):
                        # support of Z after j-1 draws, cut at t-1
                        zlo = max(0, j - 1 - (n - r))
                        zhi = min(j - 1, r - 1, tcount - 1)
                        e = 0.0
                        mass = 0.0
                        for z in range(zlo, zhi + 1):
                            e += pmf[z] * (rb + 1.0 + z)
                            mass += pmf[z]
                        acc += r / n * e / (s + j)
                        if mass < 1e-18 or j == n:
                            break
                        left = n - j  # items not yet drawn among the n-1 others, before this draw
                        for z in range(zhi, zlo - 1, -1):
                            moved = pmf[z] * ((r - 1 - z) / left)
                            pmf[z] -= moved
                            pmf[z + 1] += moved
                    break
                s += n
                rb += r
            rr_sum[i, u] = acc
    return ap_sum, top_map, pos_cnt, rr_sum
