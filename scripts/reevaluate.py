"""Re-evaluate stored run directories from their checkpoints with the current code and compare every number in
results.json's ``metrics`` and ``protocols`` blocks with the stored one: the check that a refactor changed no metric.

    python scripts/reevaluate.py results/djsrh-wiki/b64-s1 results/dgcpn-wiki/b16-s0 ...

Needs each run's local checkpoint (checkpoints are not committed). Prints the largest absolute difference per run;
exits 1 when any run cannot be evaluated or differs by more than --tol.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bitrieve.record import read_record


def numbers(d, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a nested dict, keyed by its path."""
    if isinstance(d, dict):
        return {k2: v2 for k, v in d.items() for k2, v2 in numbers(v, f"{prefix}{k}/").items()}
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return {prefix.rstrip("/"): float(d)}
    return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories holding a run record and checkpoint.safetensors")
    ap.add_argument("--tol", type=float, default=0.0, help="largest allowed absolute difference (default 0)")
    args = ap.parse_args()
    bad = 0
    for run in args.runs:
        stored = read_record(run).to_json_dict()
        p = subprocess.run([sys.executable, "-m", "bitrieve", "eval", run, "--json"], capture_output=True, text=True)
        if p.returncode:
            print(f"{run}: eval failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            bad += 1
            continue
        new = json.loads(p.stdout)
        a = numbers({k: stored.get(k) for k in ("metrics", "protocols")})
        b = numbers({k: new.get(k) for k in ("metrics", "protocols")})
        common = set(a) & set(b)
        diff = max((abs(a[k] - b[k]) for k in common), default=float("inf"))
        print(f"{run}: {len(common)} values compared, {len(set(a) ^ set(b))} on one side only, max |diff| {diff:.2e}")
        bad += int(diff > args.tol or set(a) != set(b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
