"""Speed and memory of bitrieve.eval's mAP@all against the per-query numpy loop research code uses.

Run:  .venv/bin/python benchmarks/eval_speed.py            (add --quick for a small smoke run)

Sizes (synthetic codes correlated with labels, so distances tie a lot, as real codes do):
  CIFAR-10 (I)  1,000 queries x 59,000 database x 48 bits, single label (10 classes)
  MIRFlickr     2,000 x 18,015 x 64 bits, 24-label multi-hot
  NUS-WIDE      2,000 x 184,577 x 64 bits, 10-label multi-hot: bitrieve time and peak-RSS growth; the reference
                loop is timed on a subset of queries only (its full run takes minutes) and compared on it.
The reference is the CalcMap loop of DeepHash-pytorch / DJSRH (Hamming by inner product, argsort per query, AP
from the ranks of the relevant items), with ``kind="stable"`` so that its tie order equals bitrieve's and the
values must agree (published code uses the default quicksort: same formula, implementation-defined tie order).
The last line printed is ``speedup=<x> maxdiff=<d> nus_seconds=<s> nus_peak_gib=<g>`` (speedup at CIFAR-10 (I)
scale; maxdiff the largest |difference| from the reference over all sizes).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import time

import numpy as np

from bitrieve.eval import map_at_k


def reference_map(qB, rB, query_labels, db_labels):
    """Per-query numpy loop, as in research code (±1 codes, multi-hot labels)."""
    bits = qB.shape[1]
    total = 0.0
    for i in range(qB.shape[0]):
        gnd = (query_labels[i] @ db_labels.T > 0).astype(np.float64)
        tsum = int(gnd.sum())
        if tsum == 0:
            continue
        hamm = 0.5 * (bits - rB @ qB[i])
        ind = np.argsort(hamm, kind="stable")
        gnd = gnd[ind]
        count = np.linspace(1, tsum, tsum)
        tindex = np.flatnonzero(gnd) + 1.0
        total += float(np.mean(count / tindex))
    return total / qB.shape[0]


def synthetic(rng, n, protos, multi, flip=0.12):
    """Label-correlated ±1 codes: each label has a prototype code; an item's code is the sign of the sum of its
    labels' prototypes, with a fraction ``flip`` of bits flipped."""
    n_labels, bits = protos.shape
    labels = np.zeros((n, n_labels), np.uint8)
    labels[np.arange(n), rng.integers(0, n_labels, n)] = 1
    if multi:
        labels |= (rng.random((n, n_labels)) < 0.08).astype(np.uint8)
    s = labels.astype(np.float64) @ protos + 0.1 * rng.standard_normal((n, bits))
    codes = np.where(s >= 0, 1, -1).astype(np.float32)
    codes *= np.where(rng.random((n, bits)) < flip, -1, 1).astype(np.float32)
    return codes, labels


def rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) so the next peak is this phase's; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    rng = np.random.default_rng(0)
    threads = os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count()
    print(f"cpus={os.cpu_count()} numba_threads={threads}")

    # warm-up: load (or compile) the kernels outside the timed regions
    wq, wl = synthetic(rng, 50, rng.choice([-1.0, 1.0], size=(10, 48)), False)
    map_at_k(wq, wq, wl, wl)

    maxdiff = 0.0
    speedups = {}
    for name, nq, n, bits, n_labels, multi, flip in [("cifar10-I", 1000, 59000, 48, 10, False, 0.2),
                                                      ("mirflickr", 2000, 18015, 64, 24, True, 0.12)]:
        nq, n = nq // scale, n // scale
        protos = rng.choice([-1.0, 1.0], size=(n_labels, bits))
        qB, ql = synthetic(rng, nq, protos, multi, flip)
        rB, rl = synthetic(rng, n, protos, multi, flip)
        map_at_k(qB[:10], rB[:200], ql[:10], rl[:200])  # warm-up with these dtypes/widths (kernel specialisation)
        # best of 2 (reference) and best of 3 (ours): single timings on a shared machine are noisy
        t_ref = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            ref = reference_map(qB, rB, ql.astype(np.float32), rl.astype(np.float32))
            t_ref = min(t_ref, time.perf_counter() - t0)
        t_ours = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            ours = map_at_k(qB, rB, ql, rl)
            t_ours = min(t_ours, time.perf_counter() - t0)
        diff = abs(ours - ref)
        maxdiff = max(maxdiff, diff)
        speedups[name] = t_ref / t_ours
        print(f"{name}: {nq} x {n} x {bits} bits  mAP@all={ours:.6f}  reference={ref:.6f}  |diff|={diff:.2e}  "
              f"reference {t_ref:.2f} s  bitrieve {t_ours:.3f} s  speedup {t_ref / t_ours:.1f}x")

    # NUS-WIDE scale: time and peak memory growth of one mAP@all call
    nq, n, bits = 2000 // scale, 184577 // scale, 64
    protos = rng.choice([-1.0, 1.0], size=(10, bits))
    qB, ql = synthetic(rng, nq, protos, True)
    rB, rl = synthetic(rng, n, protos, True)
    try:  # hand freed heap pages back to the OS, so that reused heap cannot hide the call's allocations
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    base = rss_bytes("VmRSS")
    have_reset = reset_peak_rss()
    c0 = time.process_time()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    ours = map_at_k(qB, rB, ql, rl)
    t_nus = time.perf_counter() - t0
    cpu_nus = time.process_time() - c0
    peak = rss_bytes("VmHWM") if have_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    growth = max(0, peak - base)
    how = "VmHWM after reset" if have_reset else f"ru_maxrss (before: {maxrss_before / 2**30:.2f} GiB)"
    sub = max(1, nq // 20)
    t0 = time.perf_counter()
    ref = reference_map(qB[:sub], rB, ql[:sub].astype(np.float32), rl.astype(np.float32))
    t_ref_sub = time.perf_counter() - t0
    ours_sub = map_at_k(qB[:sub], rB, ql[:sub], rl)
    maxdiff = max(maxdiff, abs(ours_sub - ref))
    print(f"nus-wide: {nq} x {n} x {bits} bits  mAP@all={ours:.6f}  bitrieve {t_nus:.2f} s wall "
          f"({cpu_nus:.2f} s CPU over all threads), peak RSS growth "
          f"{growth / 2**30:.3f} GiB ({how}); reference on {sub} queries {t_ref_sub:.2f} s "
          f"(~{t_ref_sub * nq / sub:.0f} s for all), |diff| there {abs(ours_sub - ref):.2e}")
    t0 = time.perf_counter()
    tie_avg = map_at_k(qB, rB, ql, rl, tie="tie-averaged")
    t_tie = time.perf_counter() - t0
    t0 = time.perf_counter()
    dcmh = map_at_k(qB, rB, ql, rl, k=1000, tie="tie-averaged", map_definition="dcmh")
    t_dj = time.perf_counter() - t0
    print(f"nus-wide tie-averaged: mAP@all={tie_avg:.6f} in {t_tie:.2f} s; dcmh mAP@1000={dcmh:.6f} in {t_dj:.2f} s")
    print(f"speedup={speedups['cifar10-I']:.1f} maxdiff={maxdiff:.2e} nus_seconds={t_nus:.2f} "
          f"nus_peak_gib={growth / 2**30:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
