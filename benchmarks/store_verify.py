"""What verifying a canonical store on load costs: ``load_store(STORE)`` (sha256 of every split file against
card.json, the default) against ``load_store(STORE, verify=False)``, in the same run.

    python benchmarks/store_verify.py STORE [--repeats 5]

Each variant is timed ``--repeats`` times, alternating, after one untimed load (so the files are in the page cache
for both: the cost measured is hashing, not disk reads). Last line:
``store_mib=<size> load_s=<median, no verify> verified_load_s=<median> overhead_s=<difference> sha256_mib_s=<rate>``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from bitrieve.data.store import load_store, read_card

    store = Path(args.store)
    names = [f"{s}.npz" for s in read_card(store)["counts"]]
    mib = sum((store / n).stat().st_size for n in names) / 2**20
    load_store(store)  # warm the page cache
    plain, verified = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        load_store(store, verify=False)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_store(store)
        verified.append(time.perf_counter() - t0)
    a, b = statistics.median(plain), statistics.median(verified)
    print(f"{store}: {len(names)} split files, {mib:,.1f} MiB; load {a:.3f} s, verified load {b:.3f} s "
          f"(+{b - a:.3f} s, {100 * (b - a) / a:.0f}%)")
    print(f"store_mib={mib:.1f} load_s={a:.3f} verified_load_s={b:.3f} overhead_s={b - a:.3f} "
          f"sha256_mib_s={mib / max(b - a, 1e-9):.0f}")


if __name__ == "__main__":
    main()
