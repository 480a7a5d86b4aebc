"""What verifying a canonical store on load costs: reading every array of every split with ``load_store(STORE)``
(sha256 of every split file against card.json before its first use, the default) against
``load_store(STORE, verify=False)``, in the same run. The process's cache of verified files is emptied before each
verified read, so every file is hashed each time (a command pays this once per file it reads).

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

    import bitrieve.data.store as st

    store = Path(args.store)
    card = st.read_card(store)
    names = [f for s in card["counts"] for f in st.store_files(store, card, s)]
    mib = sum((store / n).stat().st_size for n in names) / 2**20

    def read_all(verify: bool) -> float:
        st._VERIFIED.clear()
        t0 = time.perf_counter()
        data = st.load_store(store, verify=verify)
        for split in data.splits.values():
            st.in_memory(split)  # every array of a lazily opened store read whole
        return time.perf_counter() - t0

    read_all(True)  # warm the page cache
    plain, verified = [], []
    for _ in range(args.repeats):
        plain.append(read_all(False))
        verified.append(read_all(True))
    a, b = statistics.median(plain), statistics.median(verified)
    print(f"{store}: {len(names)} split files, {mib:,.1f} MiB; load {a:.3f} s, verified load {b:.3f} s "
          f"(+{b - a:.3f} s, {100 * (b - a) / a:.0f}%)")
    print(f"store_mib={mib:.1f} load_s={a:.3f} verified_load_s={b:.3f} overhead_s={b - a:.3f} "
          f"sha256_mib_s={mib / max(b - a, 1e-9):.0f}")


if __name__ == "__main__":
    main()
