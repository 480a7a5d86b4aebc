"""Wall time and peak memory of `bitrieve search` (5 text queries by id against an image index) on a NUS-WIDE-size
run: the store opens lazily (issue 21, item 4), and the index stores the query split's codes, so a search by id of
query items reads the index and the ids and labels of each split, loads no model and imports neither torch nor numba
(issue 21, "load what is needed"); never the 184,577 x 4,096 image features of the retrieval split.

    python benchmarks/search_latency.py                    # builds everything under a temporary directory
    python benchmarks/search_latency.py --rows 20000       # a smaller shape (stated in the output)
    python benchmarks/search_latency.py --work DIR --keep  # keep (and on a rerun, reuse) store, run and index

What it builds when not given (`--store`, `--run`, `--index`): the PROXY store `bitrieve data proxy nuswide10
--kind dense` (186,577 rows: 5,000 train / 2,000 query / 184,577 retrieval, image 4,096-d float32, 1,000 binary
tags), a DJSRH run on it trained for one epoch (the model's size is what matters here, not its quality), and an
exact image index of the retrieval split (with the query split's codes). Then it runs `bitrieve search INDEX --run
RUN --ids <5 query ids> --modality text` `--repeat` times, each in a fresh process, and reports each call's wall
time and peak resident memory (``ru_maxrss`` of the child, which counts memory-mapped pages it touched). Two more
calls search a copy of the index without the stored query codes (what an index built before them is), i.e. through
the model, for a comparison under the same load. `--baseline-src DIR/src` runs the same search with another checkout
(e.g. the commit before issue 21, which reads only store format 1: a format-1 copy of the store and of the run are
made for it) in the same run. Targets (issue 21): <= 2 s wall after the first call, <= 1 GiB peak. Measured
2026-12-07 (2-core shared machine, load average 5-6): 0.98-1.07 s, peak 86 MiB; through the model 6.1-6.5 s, peak
1,051 MiB (docs/datasets.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_ROWS = 186_577


def child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stderr+stdout tail) of one child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def bitrieve(*args: str) -> list[str]:
    return [sys.executable, "-m", "bitrieve", *map(str, args)]


FULL_LOAD = """
import sys
from pathlib import Path
import numpy as np
from bitrieve.data.store import verify_store
store = Path(sys.argv[1])
verify_store(store)  # every file hashed
kept = [np.load(f, allow_pickle=False) for f in sorted(store.glob("*/*.npy"))]  # every array read whole, kept
print(sum(a.nbytes for a in kept))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=FULL_ROWS, help="proxy rows (default: NUS-WIDE's 186,577)")
    ap.add_argument("--work", type=Path, default=None, help="directory for store, run and index (default: a "
                    "temporary one, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="search calls (the first one warms the page cache)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the whole-store baseline")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="also run the search with another checkout's src/ (e.g. the code before issue 21, which "
                         "reads only store format 1): a format-1 copy of the store and a copy of the run pointing at "
                         "it are made under the work directory")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bitrieve-search-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        store = args.store or work / "store"
        if not (store / "card.json").is_file():
            extra = [] if args.rows == FULL_ROWS else ["--rows", str(args.rows)]
            wall, rss, _ = child(bitrieve("data", "proxy", "nuswide10", "--kind", "dense", *extra, "--to", store,
                                          "--no-progress"))
            print(f"built store {store}: {wall:.1f} s, peak {rss:,.0f} MiB")
        run = args.run or work / "run"
        if not (run / "results.json").is_file():
            cfg = work / "djsrh_nus.yaml"
            cfg.write_text(f"method: djsrh\ndata: {store}\nbits: 32\nseed: 0\ndevice: cpu\ntracking: none\n"
                           "params: {input_norm: standardize, epochs: 1}\n"
                           "eval: {tasks: [i2t, t2i], ks: [50], query_limit: 100}\n")
            wall, rss, _ = child(bitrieve("train", cfg, "--out", run, "--no-progress"))
            print(f"trained {run} (1 epoch + its evaluation): {wall:.1f} s, peak {rss:,.0f} MiB")
        index = args.index or work / "index"
        if not (index / "manifest.json").is_file():
            wall, rss, _ = child(bitrieve("index", "build", "--run", run, "--modality", "image", "--out", index))
            print(f"built index {index} (encodes the retrieval split): {wall:.1f} s, peak {rss:,.0f} MiB")

        stored = "queries" in json.loads((index / "manifest.json").read_text())
        print(f"index {index}: " + ("stores the query split's codes (the search loads no model)" if stored else
                                    "stores no query codes (built before they were stored): the search encodes the "
                                    "queries with the run's model"))
        ids = ",".join(str(i) for i in np.load(store / "query" / "ids.npy")[:5])
        sizes = {p.relative_to(store).as_posix(): p.stat().st_size for p in store.rglob("*.npy")}
        n = int(np.load(store / "retrieval" / "ids.npy", mmap_mode="r").shape[0])
        print(f"\nstore: {sum(sizes.values()) / 2**30:.2f} GiB in {len(sizes)} files; retrieval split {n:,} rows, "
              f"retrieval/image.npy {sizes.get('retrieval/image.npy', 0) / 2**30:.2f} GiB"
              + ("" if args.rows == FULL_ROWS else f"  [SMALLER THAN NUS-WIDE: {args.rows:,} rows]"))
        print(f"`bitrieve search {index} --run {run} --ids {ids} --modality text` (5 text queries):")
        walls, rsss = [], []
        for i in range(args.repeat):
            wall, rss, out = child(bitrieve("search", index, "--run", run, "--ids", ids, "--modality", "text"))
            walls.append(wall)
            rsss.append(rss)
            print(f"  call {i + 1}: {wall:.2f} s wall, peak RSS {rss:,.0f} MiB")
        later = walls[1:] or walls
        print(f"after the first call: median {np.median(later):.2f} s (target <= 2 s), peak RSS max "
              f"{max(rsss):,.0f} MiB (target <= 1024 MiB)")
        plain = work / "index-without-query-codes"
        if not (plain / "manifest.json").is_file():
            child([sys.executable, "-c", "import sys; from bitrieve.index import BinaryIndex; i = BinaryIndex.load("
                   "sys.argv[1]); i.queries = None; i.save(sys.argv[2])", str(index), str(plain)])
        for i in range(2):
            wall, rss, _ = child(bitrieve("search", plain, "--run", run, "--ids", ids, "--modality", "text"))
            print(f"  through the model (a copy of the index without the stored query codes) call {i + 1}: "
                  f"{wall:.2f} s wall, peak RSS {rss:,.0f} MiB")
        if args.baseline_src is not None:
            old_store, old_run = work / "store-format1", work / "run-format1"
            if not (old_store / "card.json").is_file():
                child([sys.executable, "-c", "import sys; from bitrieve.data.store import load_store, save_store; "
                       "save_store(load_store(sys.argv[1]), sys.argv[2], store_format=1)", str(store), str(old_store)])
            if not (old_run / "config.yaml").is_file():
                shutil.copytree(run, old_run)
                text = (old_run / "config.yaml").read_text().replace(f"data: {store}\n", f"data: {old_store}\n")
                (old_run / "config.yaml").write_text(text)
            env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
            bw, br = [], []
            for i in range(2):
                wall, rss, _ = child(bitrieve("search", index, "--run", old_run, "--ids", ids, "--modality", "text",
                                              "--data", old_store), env)
                bw.append(wall)
                br.append(rss)
                print(f"  baseline ({args.baseline_src}, format-1 copy of the store) call {i + 1}: {wall:.2f} s wall, "
                      f"peak RSS {rss:,.0f} MiB")
            print(f"this checkout vs the baseline, same run: {bw[-1] / np.median(later):.1f}x faster after the first "
                  f"call, {max(br) / max(rsss):.1f}x less peak memory")
        if not args.no_baseline:
            wall, rss, _ = child([sys.executable, "-c", FULL_LOAD, str(store)])
            print(f"for scale, same run: reading + verifying the whole store once (what load_run alone did before): "
                  f"{wall:.2f} s, peak RSS {rss:,.0f} MiB")
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep or args.work is not None:
            print(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
