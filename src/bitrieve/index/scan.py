"""Exact top-k and radius search in plain numpy, for a few queries (``Q x N <= SCAN_CELLS``).

Same results as `bitrieve.index.exact` (ties in database order) without numba: a command that searches with a
handful of queries (``bitrieve search --ids``) would otherwise spend more time importing numba and loading its
cached kernels (~1-2 s on the shared 2-core machine, issue 21) than searching. The whole (Q, N) distance matrix is
formed, so memory is bounded by ``SCAN_CELLS``: ~20 bytes per cell at most (one XOR'ed code word, the distances and
their argsort), 80 MB at the bound.
"""

from __future__ import annotations

import numpy as np

from bitrieve.codes import Codes
from bitrieve.errors import BinaryIndexError

SCAN_CELLS = 1 << 22  # Q x N: e.g. 20 queries against NUS-WIDE's 184,577 items


def distances(queries: Codes, db: Codes) -> np.ndarray:
    """(Q, N) uint16 Hamming distances, one code word at a time."""
    d = np.zeros((len(queries), len(db)), np.uint16)
    for w in range(db.words.shape[1]):
        d += np.bitwise_count(queries.words[:, w, None] ^ db.words[None, :, w])
    return d


def scan_topk(queries: Codes, db: Codes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions (Q, k') int64, distances (Q, k') int32)``, ``k' = min(k, N)``, as `exact.exact_topk`: a stable
    sort of each query's distances keeps equal distances in database order."""
    if k < 1:
        raise BinaryIndexError(f"k must be >= 1, got {k}")
    d = distances(queries, db)
    pos = np.argsort(d, axis=1, kind="stable")[:, :min(int(k), len(db))]
    return pos.astype(np.int64, copy=False), np.take_along_axis(d, pos, 1).astype(np.int32)


def scan_radius(queries: Codes, db: Codes, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(offsets (Q + 1,), positions, distances)`` of every item within ``radius``, as `exact.exact_radius`."""
    if radius < 0:
        raise BinaryIndexError(f"radius must be >= 0, got {radius}")
    hits, dists = [], []
    for row in distances(queries, db):
        h = np.flatnonzero(row <= radius)
        h = h[np.argsort(row[h], kind="stable")]
        hits.append(h)
        dists.append(row[h].astype(np.int32))
    offsets = np.zeros(len(queries) + 1, np.int64)
    np.cumsum([len(h) for h in hits], out=offsets[1:])
    if not hits:
        return offsets, np.empty(0, np.int64), np.empty(0, np.int32)
    return offsets, np.concatenate(hits).astype(np.int64, copy=False), np.concatenate(dists)
