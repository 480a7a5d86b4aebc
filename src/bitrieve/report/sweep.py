"""Sweeps: one config × bit lengths × seeds × a grid of switches, one run directory per point.

Layout: ``<root>/<method>-<dataset>[-<tag>]/b<bits>-s<seed>`` where the tag names the grid assignment
(``no_gcn=true``) or is given explicitly. Every point is validated (``bitrieve.config.parse_config``) before any
run starts, so a typo in the config, a ``--set`` or a ``--grid`` fails at once, naming the key. A point whose
``results.json`` carries the same config sha256 is skipped; a started but unfinished point is resumed
(``train_run(..., resume=True)``); a finished point whose stored config differs is an error (the old results would
otherwise be silently mixed with new ones).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from bitrieve.config import ConfigError, RunConfig, load_yaml_mapping, parse_config, set_override, upgrade_config
from bitrieve.record import RECORD_FILE, RecordError, RunRecord, read_record

# where a run was computed, not what: a run finished on the GPU counts as finished when the sweep is repeated on CPU
RUNTIME_KEYS = ("device", "compile", "tracking", "checkpoint_every")


@dataclass
class SweepPoint:
    cfg: RunConfig
    run_dir: Path
    assignments: dict[str, Any] = field(default_factory=dict)  # the grid values of this point

    @property
    def name(self) -> str:
        return f"{self.run_dir.parent.name}/{self.run_dir.name}"


def parse_int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} expects comma-separated integers, got '{text}'") from None
    if not vals:
        raise ConfigError(f"--{what} is empty")
    return vals


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
    """``["params.no_gcn=true,false", "params.alpha=0.1,1"]`` -> [(key, [values])] (values parsed as YAML).

    Linked keys move together: ``params.a+params.b=1+x,2+y`` sweeps (a, b) over (1, x) and (2, y) only (one value per
    key, joined by '+'), e.g. two switches that only make sense as a pair."""
    grid = []
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--grid expects key=v1,v2,..., got '{spec}'")
        key, values = spec.split("=", 1)
        key = key.strip()
        n_keys = len(key.split("+"))
        if n_keys > 1:
            vals = [tuple(yaml.safe_load(x) for x in v.split("+")) for v in values.split(",")]
            if any(len(v) != n_keys for v in vals):
                raise ConfigError(f"--grid {key}: linked keys need {n_keys} '+'-joined values each, got '{values}'")
        else:
            vals = [yaml.safe_load(v) for v in values.split(",")]
        if not key or not vals:
            raise ConfigError(f"--grid expects key=v1,v2,..., got '{spec}'")
        if key in ("bits", "seed"):
            raise ConfigError(f"--grid {key}: use --bits / --seeds for the table axes")
        grid.append((key, vals))
    return grid


def dataset_name(data: str) -> str:
    """'wiki' -> 'wiki'; a canonical store path -> its folder name."""
    return Path(str(data)).name or str(data)


def _slug(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    s = {"true": "true", "false": "false"}.get(s, s)
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", s)


def grid_tag(assignments: dict[str, Any]) -> str:
    """``{"params.no_gcn": True}`` -> ``no_gcn=true`` (last key component; several joined by '+'; linked keys
    ``a+b=1+x``)."""
    def one(k: str, v: Any) -> str:
        if isinstance(v, tuple):
            return "+".join(p.split(".")[-1] for p in k.split("+")) + "=" + "+".join(_slug(x) for x in v)
        return f"{k.split('.')[-1]}={_slug(v)}"
    return "+".join(one(k, v) for k, v in assignments.items())


def run_dir_for(root: Path, cfg: RunConfig, tag: str = "") -> Path:
    group = f"{cfg.method}-{dataset_name(cfg.data)}" + (f"-{tag}" if tag else "")
    return Path(root) / group / f"b{cfg.bits}-s{cfg.seed}"


def expand(base: dict[str, Any], source: str, bits: list[int] | None, seeds: list[int] | None,
           sets: list[str] = (), grid: list[tuple[str, list[Any]]] = (), root: str | Path = "results",
           tag: str = "") -> list[SweepPoint]:
    """Every (grid assignment × bits × seed) point, validated. Raises one ConfigError listing every bad point
    (naming the key) before anything runs."""
    d0 = copy.deepcopy(base)
    for s in sets:
        set_override(d0, s)
    bits = bits or [d0.get("bits", 32)]
    seeds = seeds if seeds is not None else [d0.get("seed", 0)]
    keys = [k for k, _ in grid]
    combos = list(itertools.product(*[vals for _, vals in grid])) if grid else [()]
    points, errors = [], []
    for combo in combos:
        assignments = dict(zip(keys, combo))
        for b in bits:
            for s in seeds:
                d = copy.deepcopy(d0)
                for k, v in assignments.items():
                    for kk, vv in (zip(k.split("+"), v) if isinstance(v, tuple) else [(k, v)]):
                        set_override(d, f"{kk}={json.dumps(vv)}")
                d["bits"], d["seed"] = b, s
                where = ", ".join([f"{k}={v}" for k, v in assignments.items()] + [f"bits={b}", f"seed={s}"])
                try:
                    cfg = parse_config(d, source=source)
                except ConfigError as e:
                    errors.append((str(e).removeprefix(f"{source}: "), where))
                    continue
                t = "+".join(x for x in (tag, grid_tag(assignments)) if x)
                points.append(SweepPoint(cfg, run_dir_for(Path(root), cfg, t), assignments))
    if errors:
        # one line per distinct problem (a typo repeats at every point), with where it occurs
        by_msg: dict[str, list[str]] = {}
        for msg, where in errors:
            by_msg.setdefault(msg, []).append(where)
        total = len(errors) + len(points)
        lines = [f"{msg} — at {len(w)} of {total} points (first: {w[0]})" for msg, w in by_msg.items()]
        raise ConfigError(f"{source}: {len(errors)} of {total} sweep points are invalid, nothing was run:\n  "
                          + "\n  ".join(lines))
    dirs = [p.run_dir for p in points]
    if len(set(dirs)) != len(dirs):
        raise ConfigError("two sweep points map to the same run directory; give --grid values that differ")
    return points


def load_base(path: str | Path) -> dict[str, Any]:
    return load_yaml_mapping(path)


def status(point: SweepPoint) -> str:
    """'done' (results.json of this config: same sha256, or a stored config.yaml equal up to RUNTIME_KEYS such as
    the device), 'stale' (results.json of another config), 'partial' (a started run directory), or 'new'."""
    res = point.run_dir / RECORD_FILE
    if res.is_file():
        try:
            stored = read_record(res).config_sha256
        except RecordError:
            return "stale"
        if stored == point.cfg.sha256():
            return "done"
        return "done" if _same_experiment(point.run_dir / "config.yaml", point.cfg) else "stale"
    if point.run_dir.is_dir() and any(point.run_dir.iterdir()):
        return "partial"
    return "new"


def _same_experiment(stored_yaml: Path, cfg: RunConfig) -> bool:
    if not stored_yaml.is_file():
        return False
    try:
        stored = yaml.safe_load(stored_yaml.read_text())
    except yaml.YAMLError:
        return False
    if not isinstance(stored, dict):
        return False
    want, stored = cfg.resolved(), upgrade_config(stored)  # a config.yaml stored before a key was renamed
    strip = lambda d: {k: v for k, v in d.items() if k not in RUNTIME_KEYS}  # noqa: E731
    return strip(stored) == strip(want)


@dataclass
class SweepSummary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _headline(res: dict[str, Any]) -> str:
    parts = []
    for task, ms in (res.get("metrics") or {}).items():
        if isinstance(ms, dict) and "map@all" in ms:
            parts.append(f"{task} mAP@all {ms['map@all']:.4f}")
    return ", ".join(parts)


def run_sweep(points: list[SweepPoint], train_run: Callable[..., dict] | None = None, fail_fast: bool = False,
              progress: bool = True, out=None) -> SweepSummary:
    """Run every point not finished yet. ``train_run`` defaults to ``bitrieve.engine.train_run``."""
    out = out if out is not None else sys.stdout
    stale = [p for p in points if status(p) == "stale"]
    if stale:
        raise ConfigError("these run directories hold results of a different config (sha256 differs); move them "
                          "away or choose another --root, nothing was run:\n  "
                          + "\n  ".join(str(p.run_dir) for p in stale))
    if train_run is None:
        from bitrieve.engine import train_run
    summary = SweepSummary()
    n = len(points)
    t_all = time.perf_counter()
    for i, p in enumerate(points, 1):
        st = status(p)
        if st == "done":
            print(f"[{i}/{n}] {p.name}: finished earlier, skipped", file=out, flush=True)
            summary.skipped.append(str(p.run_dir))
            continue
        verb = "resuming" if st == "partial" else "running"
        print(f"[{i}/{n}] {p.name}: {verb} ({p.cfg.method}, {p.cfg.bits} bits, seed {p.cfg.seed})", file=out,
              flush=True)
        t0 = time.perf_counter()
        try:
            res = train_run(p.cfg, p.run_dir, resume=True, progress=progress)
        except KeyboardInterrupt:
            print(f"[{i}/{n}] {p.name}: interrupted; run the same command again to resume", file=out, flush=True)
            raise
        except Exception as e:  # one broken point must not lose the others' work
            msg = f"{type(e).__name__}: {e}"
            print(f"[{i}/{n}] {p.name}: FAILED after {time.perf_counter() - t0:.1f}s: {msg}", file=out, flush=True)
            summary.failed.append((str(p.run_dir), msg))
            if fail_fast:
                raise
            continue
        head = _headline(res or {})
        print(f"[{i}/{n}] {p.name}: done in {time.perf_counter() - t0:.1f}s" + (f" — {head}" if head else ""),
              file=out, flush=True)
        summary.ran.append(str(p.run_dir))
    print(f"sweep: {len(summary.ran)} ran, {len(summary.skipped)} skipped (finished), {len(summary.failed)} failed "
          f"in {time.perf_counter() - t_all:.1f}s", file=out, flush=True)
    for d, msg in summary.failed:
        print(f"  failed: {d}: {msg}", file=out, flush=True)
    return summary


# --- hyper-parameter selection on the validation split ---------------------------------------------------------
SELECT_SETS = ("selection.evaluate_test=false",)  # candidates are trained and validated; the test split waits


def kept_score(record: RunRecord) -> float:
    """A candidate run's validation score: the curve's value at the kept epoch (the best one with ``keep: best``,
    the last with ``keep: last``)."""
    sel = record.selection
    curve = {c.epoch: c.score for c in sel.curve} if sel is not None else {}
    if sel is None or sel.kept_epoch not in curve:
        raise ConfigError("selection: a candidate run has no validation score at its kept epoch; set selection.every "
                          "so that the last epoch is validated (e.g. selection.every=1)")
    return float(curve[sel.kept_epoch])


def select_by_validation(points: list[SweepPoint], out=None, evaluate: Callable[..., RunRecord] | None = None,
                         summary_path: Path | None = None) -> dict[str, Any]:
    """Choose the grid assignment with the best mean validation score over its points (bit lengths x seeds) and
    evaluate the test split of the chosen assignment's runs only; the other candidates' test numbers are never
    computed. Writes (atomically) and returns the selection record."""
    from bitrieve.atomic import write_json_atomic

    out = out if out is not None else sys.stdout
    if evaluate is None:
        from bitrieve.engine.run_evaluation import evaluate_test_split as evaluate
    groups: dict[str, list[SweepPoint]] = {}
    for p in points:
        groups.setdefault(grid_tag(p.assignments) or "(config)", []).append(p)
    cands = []
    for tag, pts in groups.items():
        scores = {}
        for p in pts:
            scores[p.name] = kept_score(read_record(p.run_dir))
        cands.append({"candidate": tag, "assignments": pts[0].assignments, "validation_mean": sum(scores.values())
                      / len(scores), "validation": scores})
    best = max(cands, key=lambda c: c["validation_mean"])  # ties: the first in grid order
    sel0 = points[0].cfg.selection
    first = read_record(points[0].run_dir).selection.split.model_dump()
    print(f"validation selection: {sel0.metric} (mean over tasks) on split '{sel0.split}' ({first['n_validation']} "
          f"queries vs {first['n_validation_database']} items, seed {first['seed']}), mean over each candidate's "
          f"{len(next(iter(groups.values())))} run(s), the {sel0.keep} epoch of each:", file=out)
    for c in cands:
        print(f"  {'*' if c is best else ' '} {c['candidate']}: {c['validation_mean']:.4f}", file=out)
    tested = {}
    for p in groups[best["candidate"]]:
        tested[p.name] = {t: {k: v for k, v in vals.items() if isinstance(v, float)} for t, vals in
                          evaluate(p.run_dir).metrics.items()}
        print(f"  test, {p.name}: " + ", ".join(f"{t} {k} {v:.4f}" for t, vals in tested[p.name].items()
                                               for k, v in vals.items() if k.startswith("map@all")), file=out)
    record = {"metric": sel0.metric, "split": {k: v for k, v in first.items() if k != "ids"},
              "keep": sel0.keep, "candidates": cands, "chosen": best["candidate"],
              "chosen_assignments": best["assignments"], "test_of_chosen": tested,
              "note": "test numbers are computed for the chosen candidate's runs only"}
    if summary_path is not None:
        write_json_atomic(summary_path, record)
        print(f"selection record: {summary_path}", file=out)
    return record
