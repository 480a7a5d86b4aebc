"""`bitrieve sweep | report | figures` (registered by bitrieve/cli.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bitrieve.atomic import check_writable
from bitrieve.report.results import ReportError
from bitrieve.options import int_option


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a config over bit lengths × seeds (× a grid of switches)",
                       description="One run directory per point, <root>/<method>-<dataset>[-<tag>]/b<bits>-s<seed>; "
                                   "finished points (same config sha256) are skipped, interrupted ones resumed. "
                                   "Every point is validated before anything runs.")
    p.add_argument("config", help="YAML run config, e.g. configs/agch_wiki.yaml")
    p.add_argument("--bits", default=None, help="comma-separated code lengths, e.g. 16,32,64,128 (default: config)")
    p.add_argument("--seeds", default=None, help="comma-separated training seeds, e.g. 0,1,2 (default: config)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for every point (repeatable), e.g. --set device=cuda")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="sweep a key over values (repeatable: cartesian product), "
                        "e.g. --grid params.no_gcn=true,false")
    p.add_argument("--root", default="results", help="root of the run directories (default: results/)")
    p.add_argument("--tag", default="", help="extra name for the run group (<method>-<dataset>-<tag>)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the points and their state; run nothing")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing run")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")
    p.add_argument("--select", metavar="METRIC", default=None,
                   help="choose the grid values by a validation metric (e.g. map@all): every point trains on the "
                        "training split minus a seeded validation carve (the config's selection block, else the "
                        "default one) and is scored on it; only the chosen values' runs are evaluated on the test "
                        "split. The record goes to <root>/<method>-<dataset>[-<tag>]-selection.json")
    p.add_argument("--finished-only", action="store_true",
                   help="with --select: choose among the grid points that have finished, train nothing (e.g. after "
                        "candidates were dropped on their validation scores to save time)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="paper-style tables from stored results.json files",
                       description="Methods (rows) × bit lengths (columns), I→T / T→I blocks, mean ± std over seeds, "
                                   "best per column in bold, protocol in the caption. Reads results.json only.")
    p.add_argument("paths", nargs="+", help="run directories or roots (searched recursively for results.json)")
    p.add_argument("--format", choices=["md", "latex", "csv", "csv-long"], default="md",
                   help="csv: one line per table cell; csv-long: one line per (run, task, metric)")
    p.add_argument("--metric", default="map@all", help="map@all (default), map@50, p@h<=2, r@1, ...; PROTOCOL:KEY for a "
                        "stored compatibility protocol, e.g. dcmh:map@50")
    p.add_argument("--out", default=None, help="write here (atomically) instead of stdout")
    p.add_argument("--allow-mixed", action="store_true",
                   help="allow runs of different datasets/protocols/tie policies in one table (flagged WARNING)")
    p.add_argument("--split", action="store_true",
                   help="one table per dataset/protocol group (what happens anyway when the runs mix protocols and "
                        "--allow-mixed is not given); groups without the metric are skipped, and named on stderr")
    p.add_argument("--digits", type=int_option(0, 15), default=3, help="decimals shown (default 3)")
    p.add_argument("--results-md", default=None, metavar="FILE",
                   help="write the full results page (mAP@all and mAP@50 tables, protocol, figures) to FILE")
    p.add_argument("--figures-dir", default=None, help="figures linked from --results-md (default: FILE's dir/figures)")
    p.add_argument("--command", default=None, help="the command recorded in --results-md (default: this one)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="the results page: run what is missing, then write docs/results.md",
                       description="Reads a page spec (docs/results_page.yaml): sections, the sweeps behind each, "
                                   "stored runs, published reference numbers. Trains the missing sweep points "
                                   "(finished ones are skipped), then writes the page, its figures and a long CSV.")
    p.add_argument("spec", help="page spec YAML, e.g. docs/results_page.yaml")
    p.add_argument("--report-only", action="store_true", help="train nothing; write the page from stored runs")
    p.add_argument("--dry-run", action="store_true", help="list every sweep point and its state; write nothing")
    p.add_argument("--only", action="append", default=[], metavar="SECTION",
                   help="train only this section's sweeps (repeatable); the page still shows every section")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for every sweep point, e.g. --set device=cuda")
    p.add_argument("--no-figures", action="store_true", help="do not redraw figures")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("figures", help="PR / P@N / training-curve / retrieval-example figures (PNG + PDF)")
    p.add_argument("paths", nargs="+", help="run directories or roots")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--kinds", default="pr,pn,train,examples",
                   help="comma-separated subset of pr,pn,train,examples (default: all)")
    p.add_argument("--examples-bits", type=int_option(1, 1024), default=None,
                   help="bit length of the run used for retrieval examples (default: the largest)")
    p.add_argument("--examples-k", type=int_option(1), default=8, help="retrieved items shown per query (default 8)")
    p.set_defaults(func=cmd_figures)


def _method_order() -> list[str]:
    try:
        from bitrieve.methods import REGISTRY

        return list(REGISTRY)
    except ImportError:
        return []


def cmd_sweep(args) -> int:
    from bitrieve.console import status

    status(f"sweep {args.config}: validating every point")
    from bitrieve.report.sweep import expand, load_base, parse_grid, parse_int_list, run_sweep, status

    from bitrieve.report.sweep import SELECT_SETS, dataset_name, select_by_validation

    base = load_base(args.config)
    sets = list(args.sets)
    if args.select:
        sets += [*SELECT_SETS, f"selection.metric={args.select}"]
    points = expand(base, args.config,
                    parse_int_list(args.bits, "bits") if args.bits else None,
                    parse_int_list(args.seeds, "seeds") if args.seeds else None,
                    sets, parse_grid(args.grid), args.root, args.tag)
    if args.dry_run:
        for i, p in enumerate(points, 1):
            print(f"[{i}/{len(points)}] {p.run_dir}: {status(p)}")
        return 0
    if args.finished_only:
        skipped = [p for p in points if status(p) != "done"]
        points = [p for p in points if status(p) == "done"]
        for p in skipped:
            print(f"{p.name}: not finished, left out (--finished-only)")
        if not points:
            print("bitrieve sweep: no finished point to select from", file=sys.stderr)
            return 1
    summary = run_sweep(points, fail_fast=args.fail_fast, progress=not args.no_progress)
    if summary.failed:
        return 1
    if args.select:
        c = points[0].cfg
        name = f"{c.method}-{dataset_name(c.data)}" + (f"-{args.tag}" if args.tag else "") + "-selection.json"
        select_by_validation(points, summary_path=Path(args.root) / name)
    return 0


def cmd_report(args) -> int:
    from bitrieve.atomic import write_text_atomic
    from bitrieve.report.results import load_results
    from bitrieve.report.results_md import write_results_md
    from bitrieve.report.tables import build_tables, protocol_groups, render, to_long_csv

    for target in (args.out, args.results_md):  # before reading any run: can the output be written at all?
        if target:
            check_writable(Path(target).parent, "report")
    try:
        if args.results_md:
            command = args.command or "bitrieve " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            path = write_results_md(args.paths, args.results_md, command, args.figures_dir, _method_order())
            print(f"wrote {path}")
            return 0
        runs = load_results(args.paths)
        if args.format == "csv-long":
            text = to_long_csv(runs)
        else:
            # runs of different protocols are never one table unless --allow-mixed: one table per protocol instead
            n_groups = len(protocol_groups(runs))
            split = args.split or (n_groups > 1 and not args.allow_mixed)
            if split and n_groups > 1 and not args.split:
                print(f"bitrieve report: these runs mix {n_groups} protocols (dataset, protocol, counts or dataset "
                      "card); one table per protocol follows (--allow-mixed: one table, flagged)", file=sys.stderr)
            tables = build_tables(runs, metric=args.metric, allow_mixed=args.allow_mixed, split=split,
                                  method_order=_method_order(), digits=args.digits)
            for line in tables.skipped:
                print(f"bitrieve report: skipped {line}", file=sys.stderr)
            text = render(tables, args.format)
    except ReportError as e:
        print(f"bitrieve report: error: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_figures(args) -> int:
    from bitrieve.report.figures import plot_curves, plot_training
    from bitrieve.report.results import load_results

    check_writable(args.out, "figures directory")
    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    unknown = kinds - {"pr", "pn", "train", "examples"}
    if unknown:
        print(f"bitrieve figures: error: unknown --kinds {sorted(unknown)}; choose from pr,pn,train,examples",
              file=sys.stderr)
        return 2
    try:
        runs = load_results(args.paths)
    except ReportError as e:
        print(f"bitrieve figures: error: {e}", file=sys.stderr)
        return 2
    from bitrieve.console import status

    out = Path(args.out)
    written = []
    what = {"pr": "precision-recall curves", "pn": "precision@N curves", "train": "training curves",
            "examples": "retrieval examples (re-encoding each run from its checkpoint)"}
    for kind in ("pr", "pn", "train", "examples"):
        if kind not in kinds:
            continue
        status(f"figures: {what[kind]} of {len(runs)} runs -> {out}")
        if kind in ("pr", "pn"):
            written += plot_curves(runs, out, "pr" if kind == "pr" else "p@n")
        elif kind == "train":
            written += plot_training(runs, out)
        else:
            from bitrieve.report.examples import plot_examples_for_runs

            written += plot_examples_for_runs(runs, out, bits=args.examples_bits, k=args.examples_k)
    for w in written:
        print(f"wrote {w}")
    if not written:
        print("bitrieve figures: nothing to draw (no curves/history in these runs)", file=sys.stderr)
        return 1
    return 0


def cmd_results(args) -> int:
    from bitrieve.config import ConfigError
    from bitrieve.console import status

    status(f"results {args.spec}: reading the page spec and validating every sweep point")
    from bitrieve.report.page import build_page, load_page_spec, section_points
    from bitrieve.report.sweep import status

    try:
        if args.dry_run:
            spec = load_page_spec(args.spec)
            for s in spec.sections:
                pts = section_points(spec, s, args.sets)
                states = [status(p) for p in pts]
                print(f"{s.id}: {len(pts)} sweep points ({', '.join(f'{states.count(x)} {x}' for x in sorted(set(states)))})"
                      + (f", {len(s.paths)} stored path(s)" if s.paths else ""))
                for p, st in zip(pts, states):
                    if st != "done":
                        print(f"  {p.run_dir}: {st}")
            return 0
        path, failed = build_page(args.spec, report_only=args.report_only, sets=args.sets, only=args.only,
                                  progress=not args.no_progress, figures=not args.no_figures,
                                  method_order=_method_order())
    except (ConfigError, ReportError) as e:
        print(f"bitrieve results: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    if failed:
        print("bitrieve results: failed runs (the page shows the finished ones):\n  " + "\n  ".join(failed),
              file=sys.stderr)
        return 1
    return 0
