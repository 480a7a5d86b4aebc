"""FAISS binary indexes (``index`` extra: ``pip install bitrieve[index]``) behind the same interface as exact search.

- ``faiss-flat``: ``IndexBinaryFlat`` — exhaustive, the same distances as our exact search. Tie order: FAISS keeps a
  heap of the best k per query and documents no order among equal distances; with faiss 1.15.1 it gave database
  order in every case we measured (benchmark, tests), but we only promise the same distances, and the same *set*
  of items below the k-th distance.
- ``faiss-ivf``: ``IndexBinaryIVF`` (Hamming k-means coarse quantizer, ``nlist`` lists, ``nprobe`` probed; FAISS's
  default nprobe is 1) — approximate.
- ``faiss-hnsw``: ``IndexBinaryHNSW`` (``M`` links per node, ``efSearch``) — approximate.

FAISS binary codes are bytes, so the code length must be a multiple of 8. Approximate indexes may return fewer than k
results for a query; the missing slots have position -1 and distance -1.
"""

from __future__ import annotations

import numpy as np

from bitrieve.codes import Codes
from bitrieve.errors import BinaryIndexError

FAISS_BACKENDS = ("faiss-flat", "faiss-ivf", "faiss-hnsw")


def import_faiss():
    from bitrieve.optional import require

    faiss = require("faiss", "the FAISS backends (or use --backend exact)")
    from bitrieve.threads import set_faiss_threads

    set_faiss_threads(faiss)  # the package's one thread count (bitrieve/threads.py), not FAISS's default
    return faiss


def check_bits(bits: int, backend: str) -> None:
    if bits % 8:
        raise BinaryIndexError(f"backend '{backend}': FAISS binary indexes need a code length that is a multiple of 8, "
                               f"got {bits} bits; use --backend exact")


def default_nlist(n: int) -> int:
    # FAISS's guideline: nlist ~ 4·sqrt(N), at least 39 training points per list
    return int(max(1, min(4 * int(np.sqrt(n)), n // 39 or 1)))


def build_faiss(codes: Codes, backend: str, nlist: int | None = None, hnsw_m: int = 32,
                seed: int = 0, progress: bool = False):
    """Build a FAISS binary index of ``backend`` over ``codes`` (positions 0..N-1 are FAISS's labels)."""
    faiss = import_faiss()
    check_bits(codes.bits, backend)
    # every option is checked before FAISS sees it: FAISS asserts (SIGABRT) or overflows on bad values
    if backend == "faiss-ivf" and nlist is not None and not 1 <= int(nlist) <= len(codes):
        raise BinaryIndexError(f"nlist (--nlist) must be in [1, {len(codes)}] (at most the number of items), "
                               f"got {nlist}")
    if backend == "faiss-hnsw" and not 2 <= int(hnsw_m) <= 512:
        raise BinaryIndexError(f"hnsw_m (--hnsw-m) must be in [2, 512], got {hnsw_m}")
    data = codes.to_bytes()
    d = codes.bits
    if backend == "faiss-flat":
        index = faiss.IndexBinaryFlat(d)
    elif backend == "faiss-ivf":
        nlist = nlist or default_nlist(len(codes))
        quantizer = faiss.IndexBinaryFlat(d)
        index = faiss.IndexBinaryIVF(quantizer, d, nlist)
        # k-means on at most 256 points per list (FAISS's own cap), drawn reproducibly
        rng = np.random.default_rng(seed)
        n_train = min(len(codes), 256 * nlist)
        sample = data if n_train == len(codes) else data[np.sort(rng.choice(len(codes), n_train, replace=False))]
        index.train(np.ascontiguousarray(sample))
    elif backend == "faiss-hnsw":
        index = faiss.IndexBinaryHNSW(d, hnsw_m)
    else:
        raise BinaryIndexError(f"unknown FAISS backend '{backend}' (have {FAISS_BACKENDS})")
    step = 1 << 18
    starts = range(0, len(codes), step)
    if progress and len(starts) > 1:
        from bitrieve.console import progress as progress_bar

        starts = progress_bar(starts, desc=f"{backend} add", unit="chunk")
    for s in starts:
        index.add(np.ascontiguousarray(data[s:s + step]))
    return index


def faiss_search(index, queries: Codes, k: int, nprobe: int | None = None,
                 ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positions (Q, k') int64, distances (Q, k') int32) with -1 in slots FAISS left empty; k' = min(k, N)."""
    faiss = import_faiss()
    for name, value in (("k", k), ("nprobe", nprobe), ("ef_search", ef_search)):
        if value is not None and int(value) < 1:
            raise BinaryIndexError(f"{name} (--{name.replace('_', '-')}) must be >= 1, got {value}")
    if nprobe is not None and hasattr(index, "nprobe"):
        index.nprobe = int(nprobe)
    if ef_search is not None and isinstance(index, faiss.IndexBinaryHNSW):
        index.hnsw.efSearch = int(ef_search)
    k = min(int(k), index.ntotal)
    D, I = index.search(queries.to_bytes(), k)
    I = I.astype(np.int64, copy=False)
    D = D.astype(np.int32, copy=False)
    D[I < 0] = -1
    return I, D


def clone_faiss(index):
    """An independent copy of a FAISS binary index (FAISS objects cannot be deep-copied by Python)."""
    return import_faiss().clone_binary_index(index)


def write_faiss(index, path) -> None:
    import_faiss().write_index_binary(index, str(path))


def read_faiss(path):
    return import_faiss().read_index_binary(str(path))
