"""The results page as a build product: one spec (docs/results_page.yaml) lists the sections of docs/results.md, the
sweeps behind each and the stored runs it reads; ``bitrieve results SPEC`` runs what is missing and writes the page,
its figures and a long-format CSV of every number.

A section holds
  * ``runs``: sweeps (config × bits × seeds [× ``set`` overrides], named ``<method>-<dataset>[-<tag>]``) that
    ``bitrieve results`` trains when missing (finished runs are skipped, interrupted ones resumed) - the same rules
    as ``bitrieve sweep``;
  * ``paths``: stored run directories that are only read (one-off runs; each is reproduced from its own
    ``config.yaml`` with ``bitrieve train RUN/config.yaml --out RUN``);
  * ``metrics``: the tables, ``map@all``, ``map@50``, ``PROTOCOL:map@50`` (a labelled protocol block) or ``recall``
    (R@1/5/10 and rsum of the matching methods);
  * ``references``: published numbers shown beside ours, each with its source, never mixed into our rows;
  * ``figures``: pr / pn / train curve figures of the section's runs (in ``<figures>/<section id>/``).
With ``--report-only`` nothing is trained and a point without results is listed as missing under its section.
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bitrieve.atomic import write_text_atomic
from bitrieve.config import ConfigError, load_yaml_mapping
from bitrieve.record import RECORD_FILE
from bitrieve.report.results import TASK_NAMES, TASK_ORDER, ReportError, RunResult, find_results, load_result, \
    row_labels
from bitrieve.report.results_md import code_summary, protocol_paragraph, write_generated_page
from bitrieve.report.tables import build_tables, markdown_blocks, metric_name, to_long_csv


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSpec(_Strict):
    config: str
    tag: str = ""
    set: list[str] = Field(default_factory=list, description="config overrides KEY=VALUE, as `bitrieve sweep --set`")
    bits: list[int] | None = None  # default: the section's
    seeds: list[int] | None = None


class Reference(_Strict):
    """Published numbers, shown in their own table under ours (never averaged or ranked with our runs)."""

    label: str
    source: str
    metric: str
    task: str
    values: dict[int, float]  # bits -> value
    note: str = ""


class Section(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    text: str = ""
    bits: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    runs: list[RunSpec] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=lambda: ["map@all", "map@50"])
    references: list[Reference] = Field(default_factory=list)
    # examples: retrieval examples, drawn when the run's checkpoint is here (not committed), else the stored PNG
    figures: list[Literal["pr", "pn", "train", "examples"]] = Field(default_factory=list)
    examples_bits: int | None = None
    protocol_note: bool = True  # print the protocol paragraph of the section's runs
    diagnostics: bool = True  # summarise the engine's code-collapse warnings of the section's runs


class PageSpec(_Strict):
    title: str = "Results"
    intro: str = ""
    output: str = "docs/results.md"
    figures: str = "docs/figures"
    root: str = "results"
    sections: list[Section] = Field(min_length=1)


def load_page_spec(path: str | Path) -> PageSpec:
    path = Path(path)
    raw = load_yaml_mapping(path)
    try:
        spec = PageSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{path}: key '{key}': {err['msg']}") from None
    ids = [s.id for s in spec.sections]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{path}: section ids must be unique, repeated: {dup}")
    return spec


def section_points(spec: PageSpec, section: Section, extra_sets: list[str] = ()):
    """Every sweep point of a section, validated (a typo in a config or a ``set`` fails here, naming the key)."""
    from bitrieve.report.sweep import expand, load_base

    points = []
    for run in section.runs:
        points += expand(load_base(run.config), run.config, run.bits or section.bits,
                         run.seeds if run.seeds is not None else section.seeds, [*run.set, *extra_sets], [],
                         spec.root, run.tag)
    return points


def collect_runs(spec: PageSpec, section: Section, points) -> tuple[list[RunResult], list[str]]:
    """The section's stored runs (sweep points with results + ``paths``) and the points still missing."""
    from bitrieve.report.sweep import status

    files, missing = [], []
    for p in points:
        st = status(p)
        if st == "done":
            files.append(p.run_dir / RECORD_FILE)
        else:
            missing.append(f"{p.run_dir} ({st})")
    for path in section.paths:  # a stored path without results is listed as missing, not an error
        try:
            files += find_results([path])
        except ReportError:
            missing.append(f"{path} (no stored {RECORD_FILE})")
    seen, runs = set(), []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            runs.append(load_result(f))
    return runs, missing


# --- rendering -------------------------------------------------------------------------------------------------
RECALL_KEYS = ("r@1", "r@5", "r@10")


def recall_table(runs: list[RunResult], digits: int = 1) -> str:
    """Matching methods: one row per (method variant, dataset), R@1/5/10 per direction and rsum, mean ± std over
    seeds (percent)."""
    labels = row_labels(runs)
    rows: dict[tuple[str, str], list[RunResult]] = {}
    for r in runs:
        if any(k in r.metrics[t] for t in r.tasks() for k in RECALL_KEYS):
            rows.setdefault((r.dataset, labels[(r.method, r.variant_sha)]), []).append(r)
    if not rows:
        return "No run stored Recall@K."
    tasks = sorted({t for rs in rows.values() for r in rs for t in r.tasks()
                    if any(k in r.metrics[t] for k in RECALL_KEYS)},
                   key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
    cols = [(t, k) for t in tasks for k in RECALL_KEYS] + [(tasks[0], "rsum")]
    head = "| Dataset | Method | n | " + " | ".join(
        "rsum" if k == "rsum" else f"{TASK_NAMES.get(t, t)} {metric_name(k)}" for t, k in cols) + " |"
    out = [head, "|" + "---|" * 3 + "---:|" * len(cols)]

    def cell(rs: list[RunResult], t: str, k: str) -> str:
        vals = [float(r.metrics[t][k]) for r in rs if k in r.metrics.get(t, {})]
        if not vals:
            return "–"
        m = statistics.fmean(vals)
        return f"{m:.{digits}f}" + (f" ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else "")

    for (dataset, label), rs in sorted(rows.items()):
        out.append(f"| {dataset} | {label.replace('_', chr(92) + '_')} | {len(rs)} | "
                   + " | ".join(cell(rs, t, k) for t, k in cols) + " |")
    return "\n".join(out)


def references_table(refs: list[Reference]) -> str:
    bits = sorted({b for r in refs for b in r.values})
    out = ["Published numbers (not run here; copied from the source named in each row):", "",
           "| Reference | Task | Metric | " + " | ".join(f"{b} bits" for b in bits) + " | Source |",
           "|---|---|---|" + "---:|" * len(bits) + "---|"]
    for r in refs:
        vals = " | ".join(f"{r.values[b]:.4g}" if b in r.values else "–" for b in bits)
        label = r.label + (f" ({r.note})" if r.note else "")
        out.append(f"| {label} | {TASK_NAMES.get(r.task, r.task)} | {metric_name(r.metric)} | {vals} | {r.source} |")
    return "\n".join(out)


def _section_figures(section: Section, runs: list[RunResult], fig_root: Path, md_dir: Path) -> list[str]:
    from bitrieve.report.figures import plot_curves, plot_training

    out_dir = fig_root / section.id
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):  # curve figures of runs no longer in the section must not linger
        if old.suffix in (".png", ".pdf") and old.name.startswith(("pr_", "pn_", "train_")):
            old.unlink()
    written: list = []
    for kind in section.figures:
        try:
            if kind == "train":
                written += plot_training(runs, out_dir)
            elif kind == "examples":
                from bitrieve.report.examples import plot_examples_for_runs

                drawn = plot_examples_for_runs(runs, out_dir, bits=section.examples_bits)
                # checkpoints are not committed: link the examples drawn now and, for runs whose checkpoint is
                # not here, the ones stored from where they were drawn (a partial redraw must not drop them)
                written += sorted({Path(d) for d in drawn} | set(out_dir.glob("examples_*.png")))
            else:
                written += plot_curves(runs, out_dir, "pr" if kind == "pr" else "p@n")
        except (ReportError, ValueError, KeyError) as e:
            written.append(f"(figure '{kind}' could not be drawn: {e})")
    lines = []
    for p in written:
        if isinstance(p, str):
            lines.append(p)
        elif p.suffix == ".png":
            rel = Path(os.path.relpath(p, md_dir)).as_posix()
            lines.append(f"![{p.stem}]({rel})")
    return lines


def render_section(section: Section, runs: list[RunResult], missing: list[str], fig_root: Path | None,
                   md_dir: Path, method_order: list[str] | None) -> list[str]:
    out = [f"## {section.title}", ""]
    if section.text.strip():
        out += [section.text.strip(), ""]
    if not runs:
        out += ["No finished run yet." if not missing else f"No finished run yet ({len(missing)} missing).", ""]
    else:
        if section.protocol_note:
            out += [protocol_paragraph(runs), ""]
        for metric in section.metrics:
            out += [f"### {'Recall@K (%)' if metric == 'recall' else metric_name(metric)}", ""]
            if metric == "recall":
                out += [recall_table(runs), ""]
                continue
            try:
                out += markdown_blocks(build_tables(runs, metric=metric, split=True, method_order=method_order))
            except ReportError as e:
                out += [f"Not available: {e}", ""]
    if section.references:
        out += [references_table(section.references), ""]
    if missing:
        out += [f"Missing runs ({len(missing)}; sweep points are trained by the page command without "
                "`--report-only`, stored paths by the command in the section text):", ""]
        out += [f"- {m}" for m in missing] + [""]
    if runs and section.diagnostics:
        out += code_summary(runs)
    if runs and section.figures and fig_root is not None:
        out += _section_figures(section, runs, fig_root, md_dir) + [""]
    return out


def build_page(spec_path: str | Path, report_only: bool = False, sets: list[str] = (), only: list[str] = (),
               progress: bool = False, command: str | None = None, figures: bool = True,
               method_order: list[str] | None = None) -> tuple[Path, list[str]]:
    """Run the sweeps of every section (unless ``report_only``), then write the page. Returns (page path, failed
    run directories)."""
    from bitrieve.console import status
    from bitrieve.report.sweep import run_sweep

    spec = load_page_spec(spec_path)
    unknown = sorted(set(only) - {s.id for s in spec.sections})
    if unknown:
        raise ConfigError(f"--only: unknown section id(s) {unknown}; known: {[s.id for s in spec.sections]}")
    points = {s.id: section_points(spec, s, list(sets)) for s in spec.sections}  # validate everything first
    failed: list[str] = []
    if not report_only:
        for s in spec.sections:
            if only and s.id not in only:
                continue
            summary = run_sweep(points[s.id], progress=progress)
            failed += [d for d, _ in summary.failed]
    md_path = Path(spec.output)
    md_dir = md_path.parent
    fig_root = Path(spec.figures) if figures else None
    all_runs: dict[Path, RunResult] = {}
    body: list[str] = []
    for s in spec.sections:
        runs, missing = collect_runs(spec, s, points[s.id])
        # a page takes ~25 s (figures): say which section is being written
        status(f"results: section '{s.id}' ({len(runs)} run{'s' if len(runs) != 1 else ''}): tables"
               + (", figures" if s.figures and figures else ""), progress)
        for r in runs:
            all_runs.setdefault(r.path.resolve(), r)
        body += render_section(s, runs, missing, fig_root, md_dir, method_order)
    command = command or f"python -m bitrieve results {spec_path}"
    long_csv = md_path.with_name(md_path.stem + "_long.csv")
    head = [f"# {spec.title}", "",
            f"<!-- Generated file: do not edit by hand. Regenerate with `{command}`. -->", "",
            f"Generated {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from {len(all_runs)} "
            "stored runs (`results.json` files); every number in our tables is read from them, none is typed "
            "(published numbers are in separate tables, each with its source).", "",
            "Command (trains what is missing, then writes this page; add `--report-only` to only rewrite it):", "",
            "```bash", command, "```", ""]
    if spec.intro.strip():
        head += [spec.intro.strip(), ""]
    head += ["Contents: " + " · ".join(f"[{s.title}](#{_anchor(s.title)})" for s in spec.sections), ""]
    tail = ["## Raw numbers", "",
            f"Every stored metric of every run above, one line per (run, task, metric): [{long_csv.name}]"
            f"({long_csv.name}).", ""]
    runs = sorted(all_runs.values(), key=lambda r: str(r.path))
    write_generated_page(md_path, "\n".join(head + body + tail))
    if runs:
        write_text_atomic(long_csv, to_long_csv(runs))
    return md_path, failed


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, spaces -> '-', punctuation other than '-' and '_' dropped."""
    keep = [c for c in title.lower() if c.isalnum() or c in " -_"]
    return "".join(keep).replace(" ", "-")
