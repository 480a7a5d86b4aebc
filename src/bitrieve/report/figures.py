"""Figures from stored runs (matplotlib, Agg backend; each figure written as PNG and PDF, atomically).

- precision–recall over Hamming radius and precision@top-N, from results.json ``curves`` (mean over seeds, one
  line per method row, one panel per task, one figure per dataset × bit length);
- training curves of every logged loss term and diagnostic, from results.json ``history`` (one figure per method
  row × dataset; one panel per quantity; one line per bit length, the mean over seeds with the seeds' range
  shaded; stage boundaries dotted).

Retrieval examples (query → top-k) live in ``report/examples.py``.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never opens a window, works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bitrieve.atomic import write_with_atomic  # noqa: E402
from bitrieve.report.results import TASK_NAMES, TASK_ORDER, RunResult, row_labels  # noqa: E402
from bitrieve.report.tables import protocol_of  # noqa: E402

FORMATS = ("png", "pdf")
NON_SERIES_KEYS = {"stage", "epoch", "step", "iter", "iteration", "time", "wall_seconds", "lr_group"}


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", s).strip("_")


MAX_STEM = 120  # file systems allow 255 bytes per name; the atomic writer adds a hidden prefix and a random suffix


def file_stem(stem: str) -> str:
    """``stem`` itself when short; else its first characters and a hash of the whole, so that a group labelled by many
    config differences (an ablation) still gets a unique, writable file name."""
    if len(stem) <= MAX_STEM:
        return stem
    return f"{stem[:MAX_STEM - 13]}-{hashlib.sha256(stem.encode()).hexdigest()[:12]}"


def save(fig, out_dir: Path, stem: str) -> list[Path]:
    stem = file_stem(stem)
    paths = []
    for fmt in FORMATS:
        p = Path(out_dir) / f"{stem}.{fmt}"
        # no creation date / software version in the file: a redrawn figure of the same runs is byte-identical
        meta = {"CreationDate": None, "Producer": None} if fmt == "pdf" else {"Software": None}
        write_with_atomic(p, lambda tmp, fmt=fmt, meta=meta: fig.savefig(tmp, format=fmt, dpi=150,
                                                                           bbox_inches="tight", metadata=meta))
        paths.append(p)
    plt.close(fig)
    return paths


def _colors(labels: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _tasks_of(runs: list[RunResult], key: str) -> list[str]:
    tasks = {t for r in runs for t, c in r.curves.items() if key in c}
    return sorted(tasks, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else 99, t))


def _group_by_dataset_bits(runs: list[RunResult]) -> dict[tuple[str, int], list[RunResult]]:
    out: dict[tuple[str, int], list[RunResult]] = {}
    for r in runs:
        out.setdefault((r.dataset, r.bits), []).append(r)
    return out


def _mean_curve(curves: list[dict[str, list]], x_key: str, y_keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Mean over seeds at the x values all seeds share (radius 0..bits, or N); NaN (undefined precision) ignored."""
    if not curves:
        return None
    common = set(curves[0][x_key])
    for c in curves[1:]:
        common &= set(c[x_key])
    xs = np.array(sorted(common), dtype=float)
    if xs.size == 0:
        return None
    out = {x_key: xs}
    for y in y_keys:
        stack = []
        for c in curves:
            lookup = dict(zip(c[x_key], c[y]))
            stack.append([np.nan if lookup[x] is None else float(lookup[x]) for x in xs])
        with np.errstate(all="ignore"):
            out[y] = np.nanmean(np.array(stack, dtype=float), axis=0)
    return out


def _dataset_title(runs: list[RunResult]) -> str:
    p = protocol_of(runs[0])
    extra = f", {p['n_query']} queries / {p['n_retrieval']} items" if p["n_query"] is not None else ""
    return f"{p['dataset']}{extra}, ties {p['tie']}"


def _panels(n: int, width: float = 4.6, height: float = 3.6):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plot_curves(runs: list[RunResult], out_dir: str | Path, kind: str = "pr") -> list[Path]:
    """kind 'pr': precision vs recall over Hamming radius; kind 'p@n': precision of the top N. One figure per
    dataset × bits."""
    out_dir = Path(out_dir)
    labels = row_labels(runs)
    colors = _colors(sorted(set(labels.values())))
    written: list[Path] = []
    for (dataset, bits), group in sorted(_group_by_dataset_bits(runs).items()):
        tasks = _tasks_of(group, kind)
        if not tasks:
            continue
        fig, axes = _panels(len(tasks))
        n_seeds = 0
        for ax, task in zip(axes, tasks):
            by_row: dict[str, list[dict]] = {}
            for r in group:
                c = r.curves.get(task, {}).get(kind)
                if c:
                    by_row.setdefault(labels[(r.method, r.variant_sha)], []).append(c)
            for row in sorted(by_row):
                n_seeds = max(n_seeds, len(by_row[row]))
                if kind == "pr":
                    m = _mean_curve(by_row[row], "radius", ("precision", "recall"))
                    if m is None:
                        continue
                    ok = ~np.isnan(m["precision"]) & ~np.isnan(m["recall"])
                    ax.plot(m["recall"][ok], m["precision"][ok], marker="o" if ok.sum() <= 40 else None, ms=2.5,
                            lw=1.4, color=colors[row],
                            label=row)
                else:
                    m = _mean_curve(by_row[row], "n", ("precision",))
                    if m is None:
                        continue
                    ok = ~np.isnan(m["precision"])
                    ax.plot(m["n"][ok], m["precision"][ok], marker="o", ms=2.5, lw=1.4, color=colors[row],
                            label=row)
            ax.set_title(TASK_NAMES.get(task, task))
            ax.grid(alpha=0.3)
            if kind == "pr":
                ax.set_xlabel("recall")
                ax.set_ylabel("precision")
                ax.set_xlim(0, 1.02)
            else:
                ax.set_xlabel("N (top retrieved items)")
                xs = [x for line in ax.get_lines() for x in line.get_xdata()]
                if xs and min(xs) > 0 and max(xs) / min(xs) > 100:  # N spans decades (1 .. database size)
                    ax.set_xscale("log")
                ax.set_ylabel("precision@N")
        what = ("Precision–recall over Hamming radius 0..bits (precision 0 for a query retrieving nothing)"
                if kind == "pr" else "Precision of the top N")
        seeds = "1 seed" if n_seeds == 1 else f"mean over ≤{n_seeds} seeds"
        fig.suptitle(f"{what}\n{_dataset_title(group)}, {bits} bits, {seeds}", fontsize=10)
        _shared_legend(fig, axes)
        stem = f"{'pr' if kind == 'pr' else 'pn'}_{slug(dataset)}_b{bits}"
        written += save(fig, out_dir, stem)
    return written


def _shared_legend(fig, axes) -> None:
    """One legend for all panels, below them (eight methods would cover the curves inside a panel)."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.tight_layout()
    if labels:
        ncol = min(len(labels), 4)
        rows = -(-len(labels) // ncol)
        fig.subplots_adjust(bottom=0.12 + 0.06 * rows)
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=ncol, fontsize=8,
                   frameon=False)


def _series(history: list[dict[str, Any]]) -> tuple[np.ndarray, dict[str, np.ndarray], list[tuple[float, str]]]:
    """x (epoch counted across stages), name -> y (NaN where absent), stage starts [(x, name)]."""
    flat = [_flatten(h) for h in history]
    xs, stages = [], []
    offset, last_epoch, stage = 0.0, 0.0, None
    for i, h in enumerate(flat):
        e = h.get("epoch")
        e = float(e) if isinstance(e, (int, float)) else float(i + 1)
        st = h.get("stage")
        if st != stage:
            if stage is not None:
                offset += last_epoch
            stages.append((offset, str(st)))
            stage = st
        last_epoch = e
        xs.append(offset + e)
    keys: list[str] = []
    for h in flat:
        for k, v in h.items():
            if k not in NON_SERIES_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    ys = {k: np.array([float(h[k]) if isinstance(h.get(k), (int, float)) else np.nan for h in flat]) for k in keys}
    return np.array(xs), ys, stages


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _priority(name: str) -> int:
    """Panel order: the optimised loss, its terms, evaluation mAPs, other evaluation scalars, code statistics,
    other diagnostics, learning rates."""
    if name == "loss":
        return 0
    if name.startswith("lr"):
        return 7
    if "/" not in name:
        return 1
    if name.startswith("eval/"):
        return 2 if name.endswith("map@all") else 3 if "/map@" in name else 4
    if name.startswith("codes/"):
        return 5
    return 6


def _constant(name: str, per_bits: dict[int, list]) -> bool:
    """A series that never changes (a fixed learning rate, the query count) carries no curve."""
    vals = np.concatenate([ys[name] for runs_b in per_bits.values() for _, ys, _ in runs_b if name in ys])
    vals = vals[np.isfinite(vals)]
    return vals.size == 0 or bool(np.all(vals == vals[0]))


def plot_training(runs: list[RunResult], out_dir: str | Path, max_panels: int = 12) -> list[Path]:
    """One figure per method row × dataset: one panel per logged quantity, one line per bit length (mean over
    seeds, the seeds' min–max shaded)."""
    out_dir = Path(out_dir)
    labels = row_labels(runs)
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in runs:
        if r.record.history:
            groups.setdefault((labels[(r.method, r.variant_sha)], r.dataset), []).append(r)
    written: list[Path] = []
    for (row, dataset), group in sorted(groups.items()):
        per_bits: dict[int, list] = {}
        names: list[str] = []
        for r in group:
            x, ys, stages = _series(r.history)
            per_bits.setdefault(r.bits, []).append((x, ys, stages))
            names += [k for k in ys if k not in names and np.isfinite(ys[k]).any()]
        if not names:
            continue
        names = [k for k in names if not _constant(k, per_bits)]
        if not names:
            continue
        names.sort(key=lambda k: (_priority(k), k))
        shown = names[:max_panels]
        fig, axes = _panels(len(shown), width=4.0, height=3.0)
        bit_colors = _colors([str(b) for b in sorted(per_bits)])
        for ax, name in zip(axes, shown):
            for b in sorted(per_bits):
                runs_b = per_bits[b]
                x = max((rb[0] for rb in runs_b), key=len)
                stack = np.full((len(runs_b), len(x)), np.nan)
                for i, (xr, ys, _) in enumerate(runs_b):
                    if name in ys:
                        stack[i, :len(xr)] = ys[name][:len(x)]
                ok = np.isfinite(stack).any(axis=0)
                if not ok.any():
                    continue
                with np.errstate(all="ignore"):
                    mean = np.nanmean(stack[:, ok], axis=0)
                    lo, hi = np.nanmin(stack[:, ok], axis=0), np.nanmax(stack[:, ok], axis=0)
                c = bit_colors[str(b)]
                ax.plot(x[ok], mean, lw=1.3, color=c, marker="o" if ok.sum() < 30 else None, ms=2.5,
                        label=f"{b} bits")
                if len(runs_b) > 1:
                    ax.fill_between(x[ok], lo, hi, color=c, alpha=0.15, lw=0)
            stages = max((rb[2] for rbs in per_bits.values() for rb in rbs), key=len)
            for sx, sname in stages[1:]:
                ax.axvline(sx + 0.5, color="grey", ls=":", lw=0.8)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("epoch" + (" (all stages)" if len(stages) > 1 else ""), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        n_seeds = max(len(v) for v in per_bits.values())
        extra = (f"; {len(names) - len(shown)} more quantities in results.json" if len(names) > len(shown) else "")
        stage_names = [s for _, s in max((rb[2] for rbs in per_bits.values() for rb in rbs), key=len)]
        seeds = "1 seed" if n_seeds == 1 else f"mean over ≤{n_seeds} seeds, range shaded"
        fig.suptitle(f"Training curves — {row} on {dataset} (stages: {' → '.join(stage_names)}; {seeds}{extra})",
                     fontsize=9)
        fig.tight_layout()
        written += save(fig, out_dir, f"train_{slug(row)}_{slug(dataset)}")
    return written


def make_figures(runs: list[RunResult], out_dir: str | Path) -> list[Path]:
    written = plot_curves(runs, out_dir, "pr") + plot_curves(runs, out_dir, "p@n") + plot_training(runs, out_dir)
    return written
