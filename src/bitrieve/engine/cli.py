"""``bitrieve train CONFIG ...`` and ``bitrieve eval RUN_DIR`` (registered by bitrieve/cli.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bitrieve.options import int_option


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one method on one dataset (resumes; skips finished runs)",
                       description="Train CONFIG (YAML). Results go to RUN_DIR/results.json; an interrupted run "
                                   "resumes from its last checkpoint; a finished run with the same config is skipped.")
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set params.epochs=5 (repeatable; value parsed as YAML)")
    p.add_argument("--bits", type=int_option(1, 1024), help="code length (overrides 'bits')")
    p.add_argument("--seed", type=int_option(0), help="training seed (overrides 'seed')")
    p.add_argument("--out", help="run directory (default: runs/<method>-<data>/b<bits>-s<seed>; another config file "
                                 "of the method and data adds its name (agch_wiki_demo.yaml: runs/agch-wiki-demo/...),"
                                 " overrides that change the config add their hash: runs/<method>-<data>-<hash>/...)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides 'device')")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], help="mixed precision (overrides 'amp')")
    p.add_argument("--compile", action="store_true", help="torch.compile the stage losses")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if RUN_DIR holds a checkpoint (never replaces finished results: --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace RUN_DIR's finished results (or another config's run) and train from scratch; only "
                        "a directory bitrieve's engine wrote is replaced")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    e = sub.add_parser("eval", help="re-evaluate a run from its checkpoint and print the metrics")
    e.add_argument("run_dir")
    e.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    e.add_argument("--json", action="store_true", help="print the full JSON instead of a table")
    e.set_defaults(func=_eval)


def config_from_args(args: argparse.Namespace, table_axes_only: bool = False):
    """Load and validate the config with every command-line override applied (fails before anything runs).
    ``table_axes_only``: only --bits/--seed (the config file as it is otherwise)."""
    from bitrieve.config import load_config

    overrides = [] if table_axes_only else list(args.overrides)
    for key in ("bits", "seed") if table_axes_only else ("bits", "seed", "device", "amp"):
        if getattr(args, key) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    if args.compile and not table_axes_only:
        overrides.append("compile=true")
    return load_config(args.config, overrides)


def _train(args: argparse.Namespace) -> int:
    from bitrieve.console import status

    status(f"train {args.config}: loading the method and its libraries")
    from bitrieve.engine import train_run
    from bitrieve.engine.distributed import current
    from bitrieve.engine.runs import override_suffix, train_run_dir

    cfg = config_from_args(args)
    # the default directory follows the resolved config: another config file, or overrides that change the config,
    # get their own directory
    plain = config_from_args(args, table_axes_only=True)
    out = Path(args.out) if args.out else train_run_dir(args.config, cfg, plain)
    if current().is_main:
        h = "" if args.out else override_suffix(cfg, plain)
        status(f"train {cfg.method} on {cfg.data}, {cfg.bits} bits, seed {cfg.seed} -> {out}"
               + (f" (-{h}: the config hash of {args.config} with the command-line overrides)" if h else ""))
    res = train_run(cfg, out, resume=not (args.no_resume or args.overwrite), progress=not args.no_progress,
                    overwrite=args.overwrite)
    if current().is_main and res:
        p = res["protocol"]
        _print_result(res, f"-> {out}\nprotocol {p['name']}: {p['n_query']} queries x {p['n_retrieval']} retrieval, "
                           f"relevance {p['relevance']}, ties {p['tie']}")
    return 0


def _print_result(res: dict, where: str) -> None:
    from bitrieve.engine import format_metrics

    print(f"{res['method']} on {res['dataset']}, {res['bits']} bits, seed {res['seed']} {where}")
    print(format_metrics(_headline(res["metrics"])))
    for w in res["diagnostics"]["warnings"]:
        print(w)


def _headline(metrics: dict) -> dict:
    drop = {"n_query", "n_database"}
    return {t: {k: v for k, v in m.items() if k not in drop} for t, m in metrics.items()}


def _eval(args: argparse.Namespace) -> int:
    from bitrieve.console import status

    status(f"eval {args.run_dir}: loading the run (config, data, checkpoint)")
    from bitrieve.engine import evaluate_run

    res = evaluate_run(args.run_dir, device=args.device)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    ck = res["checkpoint"]
    _print_result(res, f"(checkpoint: stage {ck['stage']}, epoch {ck['epoch']})")
    return 0
