"""Exact Hamming top-k: bitrieve's packed-bit search vs FAISS IndexBinaryFlat, measured in the same run.

    python benchmarks/index_search.py            # 1,000,000 x 64-bit database, 1,000 queries, top-100

Database: uniformly random codes; queries: database items with ~10% of their bits flipped (so real near neighbours
exist, as with trained codes). Both searches are exact; the script checks they return the same distances, then
prints queries/s of each (best of --repeats, JIT compilation excluded), the ratio ours/FAISS, the memory per
indexed item (packed codes + int64 id) and the build time (BinaryIndex.build + save), and ends with one line:

    ours_qps=<q> faiss_qps=<q> ratio=<r> bytes_per_item=<b> build_seconds=<s>
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="database size")
    ap.add_argument("--bits", type=int, default=64, help="code length (a multiple of 8 for FAISS)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions of each search (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both libraries (default: OMP_NUM_THREADS, else all cores); 1 gives stable "
                         "numbers on a busy machine")
    args = ap.parse_args()

    import faiss
    import numba

    from bitrieve.codes import WORD, Codes, n_words
    from bitrieve.index import BinaryIndex, binary_index

    from bitrieve.index.faiss_backend import import_faiss

    binary_index.SCAN_CELLS = 0  # the numba kernel at every shape (a few queries are otherwise scanned in numpy)
    from bitrieve.threads import configure

    configure(args.threads)  # the package's one thread rule: --threads, else OMP_NUM_THREADS, else the cores
    import_faiss()
    rng = np.random.default_rng(args.seed)
    w = n_words(args.bits)
    words = rng.integers(0, 2**63, size=(args.n, w), dtype=np.int64).view(WORD)
    words ^= rng.integers(0, 2, size=(args.n, w), dtype=np.int64).view(WORD) << np.uint64(63)  # top bit too
    if args.bits % 64:
        words[:, -1] &= np.uint64((1 << (args.bits % 64)) - 1)  # padding bits stay zero
    db = Codes(words, args.bits)
    bits = np.unpackbits(db.to_bytes()[rng.choice(args.n, args.queries, replace=False)], axis=1,
                         bitorder="little", count=args.bits)
    bits ^= (rng.random(bits.shape) < 0.1).astype(np.uint8)
    queries = BinaryIndex.build(bits, np.arange(args.queries)).codes  # packed like any query
    ids = np.arange(args.n, dtype=np.int64)
    print(f"database {args.n:,} x {args.bits} bits, {args.queries:,} queries, top-{args.k}; "
          f"threads: numba {numba.get_num_threads()}, faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ours = BinaryIndex.build(db, ids, meta={"model_hash": "benchmark"})
        ours.save(os.path.join(tmp, "idx"))
        build_s = time.perf_counter() - t0
        disk = sum(os.path.getsize(os.path.join(tmp, "idx", f)) for f in os.listdir(os.path.join(tmp, "idx")))
    t0 = time.perf_counter()
    flat = faiss.IndexBinaryFlat(args.bits)
    flat.add(db.to_bytes())
    faiss_build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours.search(Codes(queries.words[:2].copy(), args.bits), args.k)  # JIT compile / load numba cache
    print(f"numba warm-up (compile or cache load): {time.perf_counter() - t0:.2f} s")
    qbytes = queries.to_bytes()
    t_ours, t_faiss = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        res = ours.search(queries, args.k)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        D, I = flat.search(qbytes, args.k)
        t_faiss.append(time.perf_counter() - t0)
    if not np.array_equal(D, res.distances):
        raise SystemExit("MISMATCH: FAISS and bitrieve returned different distances")
    same_order = float((I == res.ids).mean())
    # resident index memory after searching: codes + ids + the word-major copy exact search keeps above 64 bits
    db_t = ours._db_t
    extra = 0 if db_t is None or np.shares_memory(db_t, ours.codes.words) else db_t.nbytes
    bytes_per_item = (ours.codes.words.nbytes + ours.ids.nbytes + extra) / args.n
    ours_qps = args.queries / min(t_ours)
    faiss_qps = args.queries / min(t_faiss)
    print(f"same distances: yes; same ids slot by slot (tie order): {same_order:.4f}")
    print(f"bitrieve exact: {ours_qps:,.0f} queries/s (runs: {', '.join(f'{t:.3f}' for t in t_ours)} s)")
    print(f"faiss flat:     {faiss_qps:,.0f} queries/s (runs: {', '.join(f'{t:.3f}' for t in t_faiss)} s)")
    print(f"memory per item: {bytes_per_item:.1f} bytes ({ours.codes.words.shape[1] * 8} code + 8 id"
          f"{f' + {extra // args.n} word-major copy' if extra else ''}); "
          f"on disk {disk / args.n:.1f} bytes; build+save {build_s:.2f} s; faiss add {faiss_build_s:.2f} s")
    print(f"ours_qps={ours_qps:.0f} faiss_qps={faiss_qps:.0f} ratio={ours_qps / faiss_qps:.2f} "
          f"bytes_per_item={bytes_per_item:.0f} build_seconds={build_s:.2f}")


if __name__ == "__main__":
    main()
