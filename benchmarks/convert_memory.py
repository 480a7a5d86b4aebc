"""Peak memory of `bitrieve data convert` on a NUS-WIDE-shaped MATLAB v7.3 release (issue 21, item 3).

    python benchmarks/convert_memory.py                  # 186,577 rows x 4,096 float32 features, 1,000 tags
    python benchmarks/convert_memory.py --rows 20000     # a smaller shape (stated in the output)
    python benchmarks/convert_memory.py --images         # raw images instead: 20,000 x 3 x 64 x 64 uint8 (IAll)
    python benchmarks/convert_memory.py --work DIR       # where release and store go (default: a temporary dir)

The benchmark writes a synthetic release in the DCMH/DJSRH layout: `nus-wide-tc10-lall.mat` (LAll, MATLAB v5,
N x 10 uint8, every row labelled), `nus-wide-tc10-yall.mat` (YAll, v7.3, N x 1,000 binary tags, stored as uint8) and
`nus-wide-tc10-xall-vgg.mat` (XAll, v7.3, N x 4,096 float32), each v7.3 matrix stored transposed as MATLAB does;
with ``--images`` the image side is `nus-wide-tc10-iall.mat` instead (IAll, v7.3, N raw images 64 x 64 x 3 uint8,
h5py sees (N, 3, 64, 64) as in the DJSRH release; default N 20,000), whose pixels conversion decodes block by block.
Then it runs `bitrieve data convert --from nuswide10` (the `nuswide10-scaled-N` recipe with `--from mscoco-mat
--prefix nus-wide-tc10` for a smaller N) in a child process and reads the child's peak resident set (``ru_maxrss``
from ``wait4``: anonymous memory and the file pages it had mapped). Target: peak <= 1.3x the final size of the
largest split (the retrieval split: image.npy + text.npy + labels.npy + ids.npy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_ROWS, DIM, TAGS, LABELS = 186_577, 4096, 1000, 10
IMAGE_ROWS, IMAGE_SHAPE = 20_000, (3, 64, 64)  # --images: channels, width, height as h5py sees IAll


def image_file(images: bool) -> str:
    return "nus-wide-tc10-iall.mat" if images else "nus-wide-tc10-xall-vgg.mat"


def write_release(root: Path, n: int, seed: int = 0, block: int = 4096, images: bool = False) -> None:
    import h5py
    import scipy.io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = (rng.random((n, LABELS)) < 0.25).astype(np.uint8)
    labels[np.arange(n), rng.integers(0, LABELS, n)] = 1  # every row labelled
    scipy.io.savemat(root / "nus-wide-tc10-lall.mat", {"LAll": labels})
    with h5py.File(root / "nus-wide-tc10-yall.mat", "w") as fy, h5py.File(root / image_file(images), "w") as fx:
        y = fy.create_dataset("YAll", shape=(TAGS, n), dtype=np.uint8)  # MATLAB's column-major: h5py sees (D, N)
        if images:  # MATLAB's N x H x W x C, column-major
            x = fx.create_dataset("IAll", shape=(n, *IMAGE_SHAPE), dtype=np.uint8)
        else:
            x = fx.create_dataset("XAll", shape=(DIM, n), dtype=np.float32)
        for s in range(0, n, block):
            e = min(s + block, n)
            y[:, s:e] = (rng.random((TAGS, e - s), dtype=np.float32) < 0.01).astype(np.uint8)
            if images:
                x[s:e] = rng.integers(0, 256, (e - s, *IMAGE_SHAPE), dtype=np.uint8)
            else:
                x[:, s:e] = rng.random((DIM, e - s), dtype=np.float32)


def convert(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, output) of one `bitrieve data convert` child."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"convert failed ({env or 'this checkout'}):\n{out[-3000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=None,
                    help=f"rows (default {FULL_ROWS:,}; {IMAGE_ROWS:,} with --images)")
    ap.add_argument("--images", action="store_true", help="a raw-image release (IAll, 3 x 64 x 64 uint8) instead of "
                                                          "features")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the release and the store")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="also convert with another checkout's src/ (e.g. the code before issue 21), same release")
    args = ap.parse_args()
    args.rows = args.rows or (IMAGE_ROWS if args.images else FULL_ROWS)
    work = args.work or Path(tempfile.mkdtemp(prefix="bitrieve-convert-memory-"))
    try:
        release, store = work / ("release-images" if args.images else "release"), work / "store"
        if not (release / image_file(args.images)).is_file():
            t0 = time.perf_counter()
            write_release(release, args.rows, images=args.images)
            print(f"wrote the synthetic v7.3 release ({args.rows:,} rows) in {time.perf_counter() - t0:.1f} s: "
                  + ", ".join(f"{p.name} {p.stat().st_size / 2**20:,.0f} MiB" for p in sorted(release.iterdir())))
        if args.rows == FULL_ROWS:
            how = ["--from", "nuswide10"]
        else:
            how = ["--from", "mscoco-mat", "--prefix", "nus-wide-tc10", "--split", f"nuswide10-scaled-{args.rows}"]
        argv = [sys.executable, "-m", "bitrieve", "data", "convert", *how, str(release), "--to", str(store),
                "--no-progress"]
        baseline = None
        if args.baseline_src is not None:
            shutil.rmtree(store, ignore_errors=True)
            baseline = convert(argv, {"PYTHONPATH": str(args.baseline_src.resolve())})
        shutil.rmtree(store, ignore_errors=True)
        wall, peak, out = convert(argv, {})
        splits = {d.name: sum(f.stat().st_size for f in d.glob("*.npy")) for d in store.iterdir() if d.is_dir()}
        largest = max(splits, key=splits.get)
        print(" ".join(argv[1:]))
        print(out.strip())
        c, w, h = IMAGE_SHAPE
        print(f"shape: {args.rows:,} x " + (f"{h} x {w} x {c} uint8 raw images" if args.images else
                                            f"{DIM} float32 image features") + f", {TAGS} tags"
              + ("" if args.rows == FULL_ROWS else "  [SMALLER THAN NUS-WIDE]"))
        print("split sizes: " + ", ".join(f"{k} {v / 2**30:.3f} GiB" for k, v in splits.items()))
        print(f"convert: {wall:.1f} s wall, peak RSS {peak / 2**30:.3f} GiB = {peak / splits[largest]:.2f}x the "
              f"largest split ({largest}, {splits[largest] / 2**30:.3f} GiB); target <= 1.3x")
        if baseline is not None:
            print(f"baseline ({args.baseline_src}), same release: {baseline[0]:.1f} s wall, peak RSS "
                  f"{baseline[1] / 2**30:.3f} GiB = {baseline[1] / splits[largest]:.2f}x the largest split -> "
                  f"{baseline[1] / peak:.1f}x the memory of this checkout")
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
