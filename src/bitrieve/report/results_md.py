"""docs/results.md, regenerated from stored runs only: the mAP@all and mAP@50 tables (one per dataset/protocol),
the command that produced them, a protocol paragraph, links to the figures, and a long-format CSV beside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

from bitrieve.atomic import write_text_atomic
from bitrieve.report.results import ReportError, RunResult, load_results, row_labels
from bitrieve.report.tables import build_tables, markdown_blocks, metric_name, protocol_groups, to_long_csv

TABLE_METRICS = ("map@all", "map@50")


def _card(r: RunResult) -> dict[str, Any]:
    p = r.run_dir / "card.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except json.JSONDecodeError:
        return {}


def protocol_paragraph(runs: list[RunResult]) -> str:
    lines = []
    for p, group in protocol_groups(runs):
        card = _card(group[0])
        version = card.get("version") or card.get("name") or p["dataset"]
        feats = card.get("features")
        feat_text = ""
        if isinstance(feats, dict):
            feat_text = " Inputs: " + "; ".join(f"{m}: {d}" for m, d in feats.items()) + "."
        seeds = sorted({r.seed for r in group})
        bits = sorted({r.bits for r in group})
        methods = sorted({r.method for r in group})
        lines.append(
            f"**{p['dataset']}** ({version}).{feat_text} Protocol '{p['protocol']}': {p['n_query']} queries, "
            f"{p['n_retrieval']} retrieval items; relevant = {p['relevance']}. Codes are the signs of each "
            "modality's own hash function (a query never sees the other modality). Ranking by Hamming distance, "
            f"ties broken {'by database order (stable)' if p['tie'] == 'stable' else 'as ' + str(p['tie'])}. "
            "mAP@all: AP over the whole ranked database (a query without any relevant item counts AP 0); mAP@50: "
            "AP over the top 50 positions normalised by the relevant items found there (bitrieve's default "
            "'deephash' definition; docs/evaluation.md). "
            f"Bit lengths {', '.join(map(str, bits))}; training seeds {', '.join(map(str, seeds))}; "
            f"methods: {', '.join(methods)}. Dataset card sha256 {str(p['dataset_card_sha256'])[:12]}….")
    return "\n\n".join(lines)


def code_summary(runs: list[RunResult]) -> list[str]:
    """The engine's collapse warnings, one line per (method row, modality): how many runs were flagged and the
    worst case (largest share of retrieval items on one code), so a table cell backed by degenerate codes is visible
    next to the numbers. Full per-run warnings are in each results.json (diagnostics.warnings)."""
    labels = row_labels(runs)
    groups: dict[tuple[str, str], list[tuple[float, RunResult]]] = {}
    totals: dict[str, int] = {}
    for r in runs:
        row = labels[(r.method, r.variant_sha)]
        totals[row] = totals.get(row, 0) + 1
        diag = r.record.diagnostics
        for m in sorted({w.split("(", 1)[1].split(")", 1)[0] for w in diag.warnings if "(" in w}):
            share = float(diag.codes[m].largest_code_share) if m in diag.codes else 0.0
            groups.setdefault((row, m), []).append((share, r))
    if not groups:
        return ["Code diagnostics: no run of this section has degenerate codes (the engine's collapse checks on the "
                "retrieval codes).", ""]
    out = ["Code diagnostics (the engine's collapse checks on the retrieval codes; per-run details in each "
           "results.json):", ""]
    for (row, m), flagged in sorted(groups.items()):
        share, worst = max(flagged, key=lambda x: x[0])
        codes = worst.record.diagnostics.codes.get(m)
        d = codes.model_dump() if codes is not None else {}
        out.append(f"- {row.replace('_', chr(92) + '_')}, {m} codes: degenerate in {len(flagged)} of {totals[row]} "
                   f"runs; worst {worst.bits} bits seed {worst.seed}: {int(d.get('distinct_codes', 0))} distinct "
                   f"codes, {share:.1%} of the items share one, {int(d.get('constant_bits', 0))} of "
                   f"{worst.bits} bits constant")
    return out + [""]


def _slug(s: str) -> str:  # = figures.slug, without importing matplotlib
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", s).strip("_")


def _figure_links(fig_dir: Path, md_dir: Path, runs: list[RunResult]) -> list[str]:
    if not fig_dir.is_dir():
        return []
    datasets = {r.dataset for r in runs}
    out = []
    sections = (("pr_", "Precision–recall over Hamming radius"), ("pn_", "Precision of the top N"),
                ("train_", "Training curves"), ("examples_", "Retrieval examples"))
    for prefix, title in sections:
        pngs = sorted(fig_dir.glob(f"{prefix}*.png"), key=lambda p: _natural(p.stem))
        # figure file names carry the dataset through figures.slug (e.g. "(PROXY)" -> "_PROXY")
        pngs = [p for p in pngs if any(f"_{_slug(d)}" in p.stem for d in datasets)] or pngs
        if not pngs:
            continue
        out.append(f"### {title}\n")
        for png in pngs:
            rel = Path(os.path.relpath(png, md_dir)).as_posix()
            pdf = png.with_suffix(".pdf")
            pdf_link = f" ([PDF]({Path(os.path.relpath(pdf, md_dir)).as_posix()}))" if pdf.is_file() else ""
            out.append(f"![{png.stem}]({rel})\n{png.stem}{pdf_link}\n")
    return out


def _natural(s: str) -> list:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def render_results_md(runs: list[RunResult], md_path: Path, command: str, fig_dir: Path | None = None,
                      method_order: list[str] | None = None) -> str:
    md_dir = md_path.parent
    fig_dir = fig_dir or md_dir / "figures"
    n_runs = len(runs)
    out = ["# Results", "",
           "<!-- Generated file: do not edit by hand. Regenerate with the command below. -->", "",
           f"Generated {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from {n_runs} stored "
           "runs (`results.json` files); every number below is read from them, none is typed.", "",
           "Command:", "", "```bash", command, "```", "",
           "## Protocol", "", protocol_paragraph(runs), ""]
    for metric in TABLE_METRICS:
        if not any(r.metric(t, metric) is not None for r in runs for t in r.tasks()):
            out += [f"## {metric_name(metric)}", "", f"No run stored {metric_name(metric)}.", ""]
            continue
        out += [f"## {metric_name(metric)}", ""]
        out += markdown_blocks(build_tables(runs, metric=metric, split=True, method_order=method_order))
    out += ["## Code diagnostics", ""] + code_summary(runs)
    links = _figure_links(fig_dir, md_dir, runs)
    if links:
        out += ["## Figures", ""] + links
    long_csv = md_path.with_name(md_path.stem + "_long.csv")
    out += ["## Raw numbers", "",
            f"Every stored metric of every run, one line per (run, task, metric): [{long_csv.name}]({long_csv.name}).",
            ""]
    return "\n".join(out)


GENERATED_MARKER = "<!-- Generated file: do not edit by hand."


def write_generated_page(md_path: Path, text: str) -> None:
    """Write a generated page atomically, refusing to replace a file that bitrieve did not write (one without the
    marker line in its first lines): a hand-written page of the same name is never overwritten."""
    if md_path.exists():
        head = md_path.read_text(encoding="utf-8", errors="replace").splitlines()[:10] if md_path.is_file() else []
        if not any(line.startswith(GENERATED_MARKER) for line in head):
            raise ReportError(f"{md_path}: exists and was not written by bitrieve (no '{GENERATED_MARKER} ...' line "
                              "at its top); refusing to replace it: move it or write the page elsewhere")
    write_text_atomic(md_path, text)


def write_results_md(paths: list[str | Path], md_path: str | Path, command: str, fig_dir: str | Path | None = None,
                     method_order: list[str] | None = None) -> Path:
    """Write ``md_path`` and ``<stem>_long.csv`` beside it (atomically)."""
    md_path = Path(md_path)
    runs = load_results(paths)
    text = render_results_md(runs, md_path, command, Path(fig_dir) if fig_dir else None, method_order)
    write_generated_page(md_path, text)
    write_text_atomic(md_path.with_name(md_path.stem + "_long.csv"), to_long_csv(runs))
    return md_path
