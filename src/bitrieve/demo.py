"""`bitrieve demo`: the main job on the embedded Wiki data.

Trains CCA-ITQ (closed form) and AGCH at 16/32/64/128 bits through the one engine, writes a run directory per
(method, bits) under ``--root`` and prints the I->T / T->I mAP table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bitrieve.options import int_option

DEMO_CONFIGS = [("CCA-ITQ", "cca_itq_wiki.yaml"), ("AGCH", "agch_wiki_demo.yaml")]
DEMO_BITS = (16, 32, 64, 128)


def find_config(name: str) -> Path:
    for base in (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"):
        if (base / name).is_file():
            return base / name
    raise FileNotFoundError(f"config '{name}' not found in ./configs or the source checkout's configs/")


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="train CCA-ITQ and AGCH on the embedded Wiki data at 16/32/64/128 bits")
    p.add_argument("--root", default="runs/demo", help="where run directories go (default: runs/demo)")
    p.add_argument("--bits", default=",".join(map(str, DEMO_BITS)), help="comma-separated code lengths")
    p.add_argument("--seed", type=int_option(0), default=0)
    p.add_argument("--methods", default=None, help="comma-separated subset of: " + ",".join(m for m, _ in DEMO_CONFIGS))
    p.add_argument("--epochs", type=int_option(1), default=None,
                   help="train the deep method(s) for this many epochs instead of their config's (a quick check; "
                        "the run directories then carry a config-hash suffix, as `train --set` does)")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from bitrieve.config import load_config
    from bitrieve.engine import train_run
    from bitrieve.engine.runs import default_run_dir, override_suffix

    bits_list = [int(b) for b in str(args.bits).split(",")]
    wanted = None if args.methods is None else {m.strip() for m in args.methods.split(",")}
    rows = []
    start = time.time()
    for label, cfg_name in DEMO_CONFIGS:
        if wanted is not None and label not in wanted:
            continue
        path = find_config(cfg_name)
        for bits in bits_list:
            plain = load_config(path, overrides=[f"bits={bits}", f"seed={args.seed}"])
            short = [f"params.epochs={args.epochs}"] if args.epochs is not None and "epochs" in plain.params else []
            cfg = load_config(path, overrides=[f"bits={bits}", f"seed={args.seed}", *short])
            run_dir = default_run_dir(cfg.method, "wiki", bits, args.seed, root=args.root,
                                      suffix=override_suffix(cfg, plain))
            print(f"== {label} {bits} bits -> {run_dir}", flush=True)
            res = train_run(cfg, run_dir, resume=True, progress=True)
            rows.append((label, bits, res))
    print(format_table(rows))
    print(f"run directories under {args.root}/ ; total {time.time() - start:.0f} s")
    return 0


def format_table(rows) -> str:
    """Markdown table: method x bits, mAP@all and mAP@50 for I->T and T->I."""
    lines = ["", "Wiki (693 queries / 2,173 retrieval; relevance = same class; ties: stable by database order)", "",
             "| method | bits | I→T mAP@all | T→I mAP@all | I→T mAP@50 | T→I mAP@50 |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, bits, res in rows:
        m = res["metrics"]
        lines.append(f"| {label} | {bits} | {m['i2t']['map@all']:.4f} | {m['t2i']['map@all']:.4f} | "
                     f"{m['i2t'].get('map@50', float('nan')):.4f} | {m['t2i'].get('map@50', float('nan')):.4f} |")
    return "\n".join(lines)
