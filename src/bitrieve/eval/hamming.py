"""Hamming distances by popcount and stable Hamming ranking of packed codes (``bitrieve.codes``).

The codes type, its validator, the sign rule and the bit layout are ``bitrieve.codes`` (re-exported here as
``Codes`` for the eval API); this module only measures and ranks.
"""

from __future__ import annotations

import numpy as np

from bitrieve.codes import Codes, CodesError

from . import _kernels


def check_same_bits(query: Codes, db: Codes) -> None:
    if query.bits != db.bits:
        raise CodesError(f"bit-length mismatch: query codes have {query.bits} bits, database codes {db.bits}")


def hamming_distance(query, db, chunk: int = 1024) -> np.ndarray:
    """(len(query), len(db)) uint16 Hamming distances (the full matrix: use for small sets).

    ``query``, ``db``: ±1 / 0/1 arrays or ``Codes``."""
    q = Codes.pack(query, "query codes")
    d = Codes.pack(db, "database codes")
    check_same_bits(q, d)
    out = np.empty((len(q), len(d)), np.uint16)
    for a in range(0, len(q), chunk):
        out[a:a + chunk] = _kernels.hamming_matrix(q.words[a:a + chunk], d.words)
    return out


def hamming_rank(query, db, k: int | None = None, chunk: int | None = None) -> np.ndarray:
    """Database indices ranked by ascending Hamming distance, ties by database order (stable).

    ``query``, ``db``: ±1 / 0/1 arrays or ``Codes``. Returns int64 (n_query, k) (k=None: all N). A counting sort
    over the distances 0..bits, parallel over queries: O(N + bits) time per query. Memory: the (n_query, k) output
    plus 2 bytes x N scratch per running query; ``chunk`` queries at a time (default: 256 MiB of output per chunk).
    """
    q = Codes.pack(query, "query codes")
    d = Codes.pack(db, "database codes")
    check_same_bits(q, d)
    n = len(d)
    k = n if k is None else int(k)
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    k = min(k, n)
    if chunk is None:
        chunk = max(1, (256 << 20) // (8 * k))
    out = np.empty((len(q), k), np.int64)
    for a in range(0, len(q), chunk):
        out[a:a + chunk] = _kernels.rank_stable(q.words[a:a + chunk], d.words, d.bits, k)
    return out
