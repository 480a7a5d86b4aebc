"""Paper-style tables from stored runs: methods (rows) × bit lengths (columns), one block per retrieval task
(I→T, T→I, ...), each cell the mean ± sample standard deviation (ddof = 1) over training seeds, the best mean per
column in bold (ties at the displayed precision are all bold). The caption states the protocol: metric (mAP@all or
mAP@K), tie policy, relevance, dataset, query/database counts and seeds.

Runs evaluated under different datasets, protocols, tie policies or query/database counts are not comparable:
``build_tables`` refuses to put them in one table unless ``allow_mixed`` (then the caption carries a WARNING line
and rows are split per protocol) or ``split`` (one table per protocol group).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bitrieve.report.results import TASK_NAMES, TASK_ORDER, ReportError, RunResult, row_labels

# what makes two runs comparable; the caption states each
PROTOCOL_FIELDS = ("dataset", "protocol", "relevance", "tie", "n_query", "n_retrieval", "dataset_card_sha256")


def protocol_of(r: RunResult) -> dict[str, Any]:
    p = r.protocol
    name = p.get("name")
    if isinstance(name, dict):  # a store's protocol record (name, citation, split seed ...): its name identifies it
        name = name.get("name", json.dumps(name, sort_keys=True))
    return {
        "dataset": r.dataset,
        "protocol": name,
        "relevance": p.get("relevance"),
        "tie": p.get("tie"),
        "n_query": p.get("n_query"),
        "n_retrieval": p.get("n_retrieval"),
        "dataset_card_sha256": r.record.dataset_card_sha256,
    }


def metric_name(m: str) -> str:
    """'map@all' -> 'mAP@all', 'map@50' -> 'mAP@50', 'p@h<=2' -> 'P@H≤2', 'dcmh:map@50' -> 'mAP@50 (dcmh
    protocol)'; a renamed protocol is shown under its current name ('djsrh:map@50' -> 'mAP@50 (dcmh protocol)')."""
    if ":" in m:
        from bitrieve.eval.map_definitions import RENAMED

        proto, m = m.split(":", 1)
        proto = RENAMED.get(proto.lower(), proto)
        return f"{metric_name(m)} ({proto} protocol, see docs/evaluation.md)"
    if m.startswith("map@"):
        return "mAP@" + m[4:]
    if m == "p@h<=2":
        return "P@H≤2"
    if m.startswith("r@"):
        return "R@" + m[2:]
    return m


@dataclass
class Cell:
    values: list[float]
    seeds: list[int]
    best: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (ddof = 1); None for a single seed."""
        if len(self.values) < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))


@dataclass
class Table:
    metric: str
    tasks: list[str]
    bits: list[int]
    rows: list[str]  # row labels in display order
    cells: dict[tuple[str, str, int], Cell]  # (task, row, bits) -> Cell
    protocols: list[dict[str, Any]]  # distinct protocol groups in the table (1 unless mixed)
    warnings: list[str] = field(default_factory=list)
    digits: int = 3
    notes: list[str] = field(default_factory=list)
    # a protocol block (``PROTOCOL:metric``) that evaluates other counts than the split (e.g. dropped rows)
    block_counts: tuple[Any, Any] | None = None

    @property
    def modal_n(self) -> int:
        ns = [c.n for c in self.cells.values()]
        return max(set(ns), key=ns.count) if ns else 0

    def seeds(self) -> list[int]:
        return sorted({s for c in self.cells.values() for s in c.seeds})

    def caption(self) -> list[str]:
        """Caption lines (plain text; renderers escape). The first WARNING lines say what is mixed."""
        lines = [f"WARNING: {w}" for w in self.warnings]
        p = self.protocols[0]
        count = (f"{_int(p['n_query'])} queries / {_int(p['n_retrieval'])} retrieval items"
                 if p["n_query"] is not None else "query/database counts not recorded")
        if self.block_counts is not None and tuple(self.block_counts) != (p["n_query"], p["n_retrieval"]):
            nq, nr = self.block_counts
            count += (f"; the '{self.metric.split(':', 1)[0]}' protocol evaluates {_int(nq)} queries / {_int(nr)} "
                      "retrieval items")
        if len(self.protocols) == 1:
            lines.append(
                f"{metric_name(self.metric)} on {p['dataset']} (protocol '{p['protocol']}', {count}); "
                f"relevance: {p['relevance'] or 'not recorded'}; ranking by Hamming distance, ties: "
                f"{_tie_text(p['tie'])}.")
        else:
            lines.append(f"{metric_name(self.metric)}; rows carry their dataset/protocol (see WARNING).")
        n = self.modal_n
        seeds = ", ".join(str(s) for s in self.seeds())
        lines.append(f"Mean ± sample std (ddof = 1) over n = {n} training seed{'s' if n != 1 else ''} per cell "
                     f"(seeds {seeds}); cells with a different n say so."
                     + (" Bold: best mean per column." if len(self.rows) > 1 else ""))
        return lines + self.notes

    def cell_text(self, task: str, row: str, bits: int) -> tuple[str, bool]:
        """('0.512 ± 0.004', is_best) or ('–', False) for a missing cell."""
        c = self.cells.get((task, row, bits))
        if c is None:
            return "–", False
        d = self.digits
        text = f"{c.mean:.{d}f}" if c.std is None else f"{c.mean:.{d}f} ± {c.std:.{d}f}"
        if c.n != self.modal_n:
            text += f" (n={c.n})"
        return text, c.best


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _tie_text(tie: Any) -> str:
    return {"stable": "stable (database order)",
            "tie-averaged": "tie-averaged (expected AP over random order within ties)"}.get(tie, str(tie))


def protocol_groups(runs: list[RunResult]) -> list[tuple[dict[str, Any], list[RunResult]]]:
    groups: dict[str, tuple[dict[str, Any], list[RunResult]]] = {}
    for r in runs:
        p = protocol_of(r)
        groups.setdefault(json.dumps(p, sort_keys=True, default=str), (p, []))[1].append(r)
    return list(groups.values())


def describe_mix(protocols: list[dict[str, Any]]) -> str:
    parts = []
    for f in PROTOCOL_FIELDS:
        vals = sorted({str(p[f]) for p in protocols})
        if len(vals) > 1:
            shown = [v[:12] if f == "dataset_card_sha256" else v for v in vals]
            parts.append(f"{f}: {' vs '.join(shown)}")
    return "; ".join(parts)


def describe_group(p: dict[str, Any], runs: list[RunResult]) -> str:
    """'wiki, protocol 'wiki', card ea2fb10ee456: 24 runs in results/djsrh-wiki, results/jdsh-wiki' (where they are)."""
    return f"{p['dataset']}, protocol '{p['protocol']}', card {str(p['dataset_card_sha256'])[:12]}: {_where(runs)}"


def _where(runs: list[RunResult]) -> str:
    dirs = sorted({str(r.run_dir.parent) for r in runs})
    shown = ", ".join(dirs[:3]) + (f" and {len(dirs) - 3} more" if len(dirs) > 3 else "")
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''} in {shown}"


def card_notes(groups: list[tuple[dict[str, Any], list[RunResult]]]) -> dict[int, str]:
    """For datasets whose runs carry different dataset cards: which group was evaluated under a card that is not
    the dataset's current one, and what differs (index of the group -> note). Empty when nothing is stale or the
    data is not here to compare with."""
    from bitrieve.data.types import card_sha256
    from bitrieve.report.results import card_differences, current_card, read_card

    by_dataset: dict[str, list[int]] = {}
    for i, (p, _) in enumerate(groups):
        by_dataset.setdefault(p["dataset"], []).append(i)
    notes: dict[int, str] = {}
    cards: dict[str, dict[str, Any] | None] = {}  # data spec -> its current card (read once per spec)
    for dataset, idx in by_dataset.items():
        if len({groups[i][0]["dataset_card_sha256"] for i in idx}) < 2:
            continue
        for i in idx:
            p, runs = groups[i]
            # the current card of THIS group's data (runs of one dataset name may come from different stores,
            # e.g. the embedded Wiki and a converted copy): compared with another group's data, a note would land
            # on the wrong table
            spec = str(runs[0].variant.get("data"))
            if spec not in cards:
                try:
                    cards[spec] = current_card(runs[0])
                except Exception:  # noqa: BLE001 (the data is optional here: no note rather than no report)
                    cards[spec] = None
            now = cards[spec]
            if now is None:
                continue
            now_sha = card_sha256(now)
            if p["dataset_card_sha256"] == now_sha:
                continue
            old = read_card(runs[0])
            what = (f"its card.json differs from the current one in {', '.join(card_differences(old, now))}"
                    if old is not None else "its card.json is not stored")
            same_inputs = old is not None and old.get("sha256") == now.get("sha256") and old.get("sha256")
            notes[i] = (f"{_where(runs)} {'were' if len(runs) > 1 else 'was'} evaluated under an older '{dataset}' "
                        "dataset card "
                        f"({str(p['dataset_card_sha256'])[:12]}; current {now_sha[:12]}): {what}"
                        + ("; the input files are the same (sha256 equal)" if same_inputs else "")
                        + ". Retrain (bitrieve train CONFIG --out RUN_DIR --overwrite) to compare with the other runs.")
    return notes


class TableSet(list):
    """``build_tables``'s answer: the tables, plus ``skipped`` (protocol groups left out because none of their runs
    has the metric) and ``notes`` (stale dataset cards), one line each, for the caller to print."""

    def __init__(self, tables=(), skipped: list[str] | None = None, notes: list[str] | None = None):
        super().__init__(tables)
        self.skipped = list(skipped or [])
        self.notes = list(notes or [])


def build_tables(runs: list[RunResult], metric: str = "map@all", allow_mixed: bool = False, split: bool = False,
                 method_order: list[str] | None = None, digits: int = 3) -> TableSet:
    """One table (or one per protocol group with ``split``). Raises ReportError on mixed protocols unless
    ``allow_mixed`` or ``split``; on no runs; on a metric no run has. With ``split``, a protocol group none of whose
    runs has the metric (e.g. Recall@K-only VSE++ runs in a mAP table) is skipped and named in ``.skipped``."""
    if not runs:
        raise ReportError("no runs to report")
    groups = protocol_groups(runs)
    stale = card_notes(groups) if len(groups) > 1 else {}
    if len(groups) > 1 and split:
        tables, skipped = [], []
        # per dataset, the largest group first (a few runs under an older card come after the main table)
        order = sorted(range(len(groups)), key=lambda i: (str(groups[i][0]["dataset"]), -len(groups[i][1]), i))
        for i, (p, g) in ((i, groups[i]) for i in order):
            if not any(r.metric(t, metric) is not None for r in g for t in r.tasks()):
                skipped.append(f"{describe_group(p, g)}: no '{metric}' (they have {', '.join(metrics_present(g))})")
                continue
            t = _build(g, metric, [p], [], method_order, digits, False)
            if i in stale:
                t.warnings.insert(0, stale[i])
            tables.append(t)
        if not tables:
            raise ReportError(f"no run has metric '{metric}'; metrics present: {', '.join(metrics_present(runs))}")
        return TableSet(tables, skipped, [stale[i] for i in sorted(stale)])
    if len(groups) > 1 and not allow_mixed:
        raise ReportError(
            f"these runs mix protocols ({describe_mix([p for p, _ in groups])}); their numbers are not "
            "comparable in one table. Groups: " + "; ".join(describe_group(p, g) for p, g in groups) + ". "
            + "".join(f"{stale[i]} " for i in sorted(stale))
            + "Use --split (one table per protocol) or --allow-mixed (one table, flagged).")
    protocols = [p for p, _ in groups]
    warns = []
    if len(groups) > 1:
        warns.append(f"this table mixes protocols ({describe_mix(protocols)}); rows from different protocols are "
                     "NOT comparable.")
        warns += [stale[i] for i in sorted(stale)]
    return TableSet([_build(runs, metric, protocols, warns, method_order, digits, len(groups) > 1)],
                    notes=[stale[i] for i in sorted(stale)])


def metrics_present(runs: list[RunResult]) -> list[str]:
    """Every metric key the runs store (``metrics`` and ``PROTOCOL:KEY`` of stored protocol blocks)."""
    have = sorted({m for r in runs for t in r.tasks() for m in r.metrics[t]})
    have += sorted({f"{p}:{m}" for r in runs for p, blk in r.record.extra_evaluations.items()
                    for t in blk.tasks().values() for m in t})
    return have


def _build(runs, metric, protocols, warns, method_order, digits, mixed) -> Table:
    labels = row_labels(runs)
    vary = [f for f in PROTOCOL_FIELDS if len({str(p[f]) for p in protocols}) > 1] if mixed else []

    def row_of(r: RunResult) -> str:
        label = labels[(r.method, r.variant_sha)]
        if vary:
            p = protocol_of(r)
            label += " [" + ", ".join(f"{f}={str(p[f])[:12]}" for f in vary) + "]"
        return label

    cells: dict[tuple[str, str, int], Cell] = {}
    order_key: dict[str, tuple] = {}
    missing = 0
    for r in sorted(runs, key=lambda r: (r.bits, r.seed)):
        row = row_of(r)
        rank = method_order.index(r.method) if method_order and r.method in method_order else len(method_order or [])
        order_key.setdefault(row, (rank, r.method, row))
        for task in r.tasks():
            v = r.metric(task, metric)
            if v is None:
                missing += 1
                continue
            c = cells.setdefault((task, row, r.bits), Cell([], []))
            c.values.append(v)
            c.seeds.append(r.seed)
    if not cells:
        raise ReportError(f"no run has metric '{metric}'; metrics present: {', '.join(metrics_present(runs))}")
    if missing:
        warns.append(f"{missing} run×task results lack '{metric}' (shown as –).")
    tasks = sorted({t for t, _, _ in cells}, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else 99, t))
    bits = sorted({b for _, _, b in cells})
    rows = sorted(order_key, key=lambda k: order_key[k])
    for task in tasks:
        for b in bits:
            col = [c for (t, _, bb), c in cells.items() if t == task and bb == b]
            if not col:  # e.g. a mixed table: I→I only at 12 bits, T→I only at 16
                continue
            top = max(round(c.mean, digits) for c in col)
            for c in col:
                c.best = round(c.mean, digits) == top and len(rows) > 1
    no_rel = {t: max(int(r.metrics[t].get("queries_without_relevant") or 0) for r in runs if t in r.tasks())
              for t in tasks}
    notes = ["Queries without any relevant database item (AP 0, counted in the mean; most in one run): "
             + ", ".join(f"{TASK_NAMES.get(t, t)} {n}" for t, n in no_rel.items() if n) + "."] \
        if any(no_rel.values()) else []
    block_counts = None
    if ":" in metric:  # counts stored in the protocol block itself (one pair for the whole table, else none)
        proto = metric.split(":", 1)[0]
        pairs = {(r.metric(t, f"{proto}:n_query"), r.metric(t, f"{proto}:n_retrieval")) for r in runs for t in tasks
                 if r.metric(t, metric) is not None}  # runs without the block (shown as –) do not count
        if len(pairs) == 1 and None not in next(iter(pairs)):
            nq, nr = next(iter(pairs))
            block_counts = (int(nq), int(nr))
    return Table(metric, tasks, bits, rows, cells, protocols, warns, digits, notes, block_counts)


# --- renderers ---------------------------------------------------------------------------------------------------

def to_markdown(t: Table) -> str:
    out = []
    for line in t.caption():
        out.append(f"**{line}**" if line.startswith("WARNING") else line)
        out.append("")
    out.append("| Task | Method | " + " | ".join(f"{b} bits" for b in t.bits) + " |")
    out.append("|---|---|" + "---:|" * len(t.bits))
    for task in t.tasks:
        for i, row in enumerate(t.rows):
            cells = []
            for b in t.bits:
                text, best = t.cell_text(task, row, b)
                cells.append(f"**{text}**" if best else text)
            name = TASK_NAMES.get(task, task) if i == 0 else ""
            out.append(f"| {name} | {_md_escape(row)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def markdown_blocks(tables: TableSet) -> list[str]:
    """Lines of a Markdown page: each table, then one line per protocol group left out for lack of the metric."""
    out: list[str] = []
    for t in tables:
        out += [to_markdown(t), ""]
    out += [f"Not in the table above: {line}." for line in getattr(tables, "skipped", [])]
    return out + ([""] if getattr(tables, "skipped", []) else [])


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("_", "\\_")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "→": r"$\rightarrow$", "≤": r"$\leq$", "–": "--", "≥": r"$\geq$"}


def latex_escape(s: str) -> str:
    s = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)
    for u, l in _LATEX_UNICODE.items():
        s = s.replace(u, l)
    return s


def to_latex(t: Table) -> str:
    """A booktabs ``table`` (needs \\usepackage{booktabs})."""
    cols = "ll" + "r" * len(t.bits)
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    cap = " ".join((r"\textbf{" + latex_escape(l) + "}") if l.startswith("WARNING") else latex_escape(l)
                   for l in t.caption())
    out.append(r"\caption{" + cap + "}")
    out.append(r"\begin{tabular}{" + cols + "}")
    out.append(r"\toprule")
    out.append("Task & Method & " + " & ".join(f"{b} bits" for b in t.bits) + r" \\")
    for task in t.tasks:
        out.append(r"\midrule")
        for i, row in enumerate(t.rows):
            cells = []
            for b in t.bits:
                text, best = t.cell_text(task, row, b)
                text = latex_escape(text)
                cells.append(r"\textbf{" + text + "}" if best else text)
            name = latex_escape(TASK_NAMES.get(task, task)) if i == 0 else ""
            out.append(f"{name} & {latex_escape(row)} & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ["task", "method", "bits", "metric", "mean", "std", "n", "seeds", "best", "dataset", "protocol",
               "tie", "n_query", "n_retrieval", "warning"]


def to_csv(tables: Table | list[Table]) -> str:
    """The aggregated cells of one table or several (``--split``), one line per (task, method, bits), one header."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for t in [tables] if isinstance(tables, Table) else tables:
        p = t.protocols[0] if len(t.protocols) == 1 else {f: "MIXED" for f in PROTOCOL_FIELDS}
        warning = " | ".join(t.warnings)
        for task in t.tasks:
            for row in t.rows:
                for b in t.bits:
                    c = t.cells.get((task, row, b))
                    if c is None:
                        continue
                    std = "" if c.std is None else f"{c.std:.6g}"
                    w.writerow([task, row, b, t.metric, f"{c.mean:.6g}", std, c.n, " ".join(map(str, c.seeds)),
                                int(c.best), p["dataset"], p["protocol"], p["tie"], p["n_query"], p["n_retrieval"],
                                warning])
    return buf.getvalue()


LONG_COLUMNS = ["run_dir", "method", "row", "dataset", "bits", "seed", "task", "metric", "value", "protocol", "tie",
                "relevance", "n_query", "n_retrieval", "config_sha256", "dataset_card_sha256"]


def to_long_csv(runs: list[RunResult]) -> str:
    """Every stored number, one line per (run, task, metric): the format for your own analysis."""
    labels = row_labels(runs)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LONG_COLUMNS)
    for r in sorted(runs, key=lambda r: (r.method, r.dataset, r.bits, r.seed, str(r.path))):
        p = r.protocol
        for task in r.tasks():
            for name, value in r.metrics[task].items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                w.writerow([str(r.run_dir), r.method, labels[(r.method, r.variant_sha)], r.dataset, r.bits, r.seed,
                            task, name, f"{value:.6g}", p.get("name"), p.get("tie"), p.get("relevance"),
                            p.get("n_query"), p.get("n_retrieval"), r.record.config_sha256,
                            r.record.dataset_card_sha256])
    return buf.getvalue()


def render(tables: list[Table], fmt: str) -> str:
    """All tables in one format: Markdown / LaTeX tables one after another, CSV under one header."""
    if fmt == "csv":
        return to_csv(list(tables))
    return "\n".join({"md": to_markdown, "latex": to_latex}[fmt](t) for t in tables)
