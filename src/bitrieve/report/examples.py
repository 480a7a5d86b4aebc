"""Retrieval-example figures: a few queries and their top-k retrieved items, relevant ones marked (green frame,
✓) and irrelevant ones red (✗).

The codes are recomputed from the run directory (``config.yaml`` + ``checkpoint.safetensors``, loaded with
safetensors — no code execution), then ranked by Hamming distance with ties in database order (the stable policy).
What each item shows depends on what the dataset ships: raw images (uint8 N×C×H×W inputs) are drawn; captions are
drawn when the split carries a ``caption`` side column or token ids with the store's ``vocab.json``; otherwise
(Wiki: SIFT/LDA features only) the item's class names.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from bitrieve.report.figures import save, slug  # noqa: E402
from bitrieve.report.results import TASK_NAMES, ReportError, RunResult  # noqa: E402
from bitrieve.tasks import TASKS  # noqa: E402


def load_codes(run_dir: str | Path) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(data, query codes {modality: ±1}, retrieval codes) of a finished run, recomputed from its checkpoint
    (`bitrieve.engine.load_run`, on the CPU, on the run's own splits)."""
    import torch

    from bitrieve.codes import sign
    from bitrieve.engine.runs import load_run_config
    from bitrieve.data import load_data
    from bitrieve.engine import load_run
    from bitrieve.checkpoint import CHECKPOINT
    from bitrieve.engine.evaluation import encode_split
    from bitrieve.engine.selection import setup

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ReportError(f"{run_dir}: no config.yaml (not a run directory)")
    if not (run_dir / CHECKPOINT).is_file():  # before reading the data: most stored runs keep no checkpoint
        raise ReportError(f"{run_dir}: no {CHECKPOINT}; retrieval examples need the trained model")
    cfg = load_run_config(run_dir)
    data = setup(cfg, load_data(cfg.data))[0]  # a validation carve changes the splits the run was evaluated on
    try:
        _, method = load_run(run_dir, device="cpu", data=data)
    except RuntimeError as e:  # state dict of another architecture
        raise ReportError(f"{run_dir}/checkpoint.safetensors does not fit {cfg.method}: {e}") from None
    device = torch.device("cpu")
    mods = [m for m in method.modalities if m in data["query"].inputs]
    if getattr(method, "output", "hash") == "embedding" and not getattr(method.params, "binary", False):
        # real-valued methods (VSE++) are ranked by cosine, as the engine evaluates them
        def emb(split, m):
            h = encode_split(method, split, m, device)
            return torch.nn.functional.normalize(h, dim=1).numpy()

        return data, {m: emb(data["query"], m) for m in mods}, {m: emb(data["retrieval"], m) for m in mods}
    q = {m: sign(encode_split(method, data["query"], m, device)) for m in mods}
    r = {m: sign(encode_split(method, data["retrieval"], m, device)) for m in mods}
    return data, q, r


def top_k(query_codes: np.ndarray, db_codes: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) database rows ranked by Hamming distance (±1 integer codes) or by cosine (float unit-norm embeddings),
    ties in database order (stable)."""
    if np.issubdtype(query_codes.dtype, np.floating):
        return np.argsort(-(query_codes @ db_codes.T), axis=1, kind="stable")[:, :k]
    bits = query_codes.shape[1]
    dist = (bits - query_codes.astype(np.int32) @ db_codes.astype(np.int32).T) // 2
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def _class_text(labels: np.ndarray, names: list[str] | None) -> str:
    idx = np.flatnonzero(labels)
    if names is None:
        return ", ".join(f"class {i}" for i in idx) or "(no label)"
    return ", ".join(names[i] for i in idx) or "(no label)"


def _captions(data, split_name: str, store_dir: Path | None) -> np.ndarray | None:
    split = data[split_name]
    extras = getattr(split, "extras", {}) or {}
    if "caption" in extras:
        return np.asarray(extras["caption"]).astype(str)
    from bitrieve.data.captions import SPECIALS

    feat = (data.card.get("features") or {}).get("text")
    if isinstance(feat, dict) and feat.get("kind") == "tokens" and store_dir is not None:
        vocab_path = store_dir / str(feat.get("vocab_file", "vocab.json"))
        if vocab_path.is_file():
            vocab = json.loads(vocab_path.read_text())
            tokens = np.asarray(split.inputs["text"])
            return np.array([" ".join(vocab[t] for t in row if len(SPECIALS) <= t < len(vocab)) for row in tokens])
    return None


def _item_view(data, split_name: str, modality: str, store_dir: Path | None):
    """row -> ('image', HxWxC array) | ('text', str)."""
    split = data[split_name]
    names = data.card.get("label_names")
    x = split.inputs.get(modality)
    caps = _captions(data, split_name, store_dir) if modality == "text" else None
    group = (getattr(split, "extras", {}) or {}).get("group")

    def view(row: int):
        if modality == "image" and x is not None and x.dtype == np.uint8 and x.ndim == 4:
            img = x[row]
            return "image", (img.transpose(1, 2, 0) if img.shape[0] in (1, 3) else img).squeeze(), \
                _class_text(split.labels[row], names)
        if caps is not None:
            return "text", caps[row]
        # caption data repeat an image on each of its caption rows: name the image by its group, not the row id
        who = f"image {int(group[row])}" if modality == "image" and group is not None else \
            f"{modality} #{int(split.ids[row])}"
        return "text", f"{_class_text(split.labels[row], names)}\n({who})"

    return view


def relevant(q_split, row: int, r_split, rows: np.ndarray) -> np.ndarray:
    """Caption data (a ``group`` side column on both splits: the image a caption belongs to): same group, as the
    engine's Recall@K counts a hit. Otherwise: at least one shared label, as mAP does."""
    qg, rg = (getattr(q_split, "extras", {}) or {}).get("group"), (getattr(r_split, "extras", {}) or {}).get("group")
    if qg is not None and rg is not None:
        return np.asarray(rg)[rows] == np.asarray(qg)[row]
    return (r_split.labels[rows].astype(bool) & q_split.labels[row].astype(bool)).any(axis=1)


def plot_examples(data, q_codes: dict[str, np.ndarray], r_codes: dict[str, np.ndarray], out_dir: str | Path,
                  stem: str, title: str, n_queries: int = 4, k: int = 8, seed: int = 0,
                  store_dir: Path | None = None) -> list[Path]:
    """One figure: per cross-modal task a block of ``n_queries`` rows (query, then its top ``k``)."""
    tasks = [t for t in ("i2t", "t2i") if all(m in q_codes for m in TASKS[t])] or \
            [t for t in ("i2i", "t2t") if all(m in q_codes for m in TASKS[t])]
    if not tasks:
        return []
    q_split, r_split = data["query"], data["retrieval"]
    rng = np.random.default_rng(seed)  # which queries are shown: fixed seed, not chosen by outcome
    rows = np.sort(rng.choice(len(q_split), size=min(n_queries, len(q_split)), replace=False))
    n_rows = len(tasks) * len(rows)
    fig, axes = plt.subplots(n_rows, k + 1, figsize=(1.55 * (k + 1), 1.35 * n_rows), squeeze=False)
    for ti, task in enumerate(tasks):
        qm, dm = TASKS[task]
        ranked = top_k(q_codes[qm][rows], r_codes[dm], k)
        qview = _item_view(data, "query", qm, store_dir)
        dview = _item_view(data, "retrieval", dm, store_dir)
        for qi, row in enumerate(rows):
            line = axes[ti * len(rows) + qi]
            rel = relevant(q_split, int(row), r_split, ranked[qi])
            _draw(line[0], qview(int(row)), edge="black", head=f"{TASK_NAMES[task]} query")
            for j in range(k):
                mark = "✓" if rel[j] else "✗"
                _draw(line[j + 1], dview(int(ranked[qi, j])), edge="tab:green" if rel[j] else "tab:red",
                      head=f"#{j + 1} {mark}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, Path(out_dir), stem)


def _draw(ax, item, edge: str, head: str) -> None:
    kind, content = item[0], item[1]
    ax.set_xticks([])
    ax.set_yticks([])
    if kind == "image":
        ax.imshow(content, cmap="gray" if content.ndim == 2 else None)
        ax.set_xlabel(textwrap.shorten(item[2], 24), fontsize=6.5, labelpad=1)
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        fill = {"tab:green": "#e8f5e9", "tab:red": "#fdecea"}.get(edge, "#f2f2f2")
        ax.add_patch(Rectangle((0, 0), 1, 1, color=fill, zorder=0))
        first, _, rest = str(content).partition("\n")
        text = textwrap.fill(first, 18)[:90] + (f"\n{rest}" if rest else "")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7)
    for s in ax.spines.values():
        s.set_edgecolor(edge)
        s.set_linewidth(2.5)
    ax.set_title(head, fontsize=7, color=edge if edge != "black" else "black", pad=2)


def verify_codes(r: RunResult, data, q: dict[str, np.ndarray], db: dict[str, np.ndarray],
                 max_pairs: int = 20_000_000) -> str:
    """Recompute mAP@all from the reloaded codes and compare with results.json, so the figure provably shows the
    reported model (skipped for large databases). Returns a line for the title."""
    from bitrieve.eval import map_at_k

    limit = (r.protocol.get("query_limit") or len(data["query"]))
    checked = []
    for task in TASKS:
        qm, dm = TASKS[task]
        stored = r.metric(task, "map@all")
        if stored is None or qm not in q or dm not in db:
            continue
        if limit * len(data["retrieval"]) > max_pairs:
            return "codes not re-checked (large database)"
        got = map_at_k(q[qm][:limit], db[dm], data["query"].labels[:limit], data["retrieval"].labels,
                       tie=r.protocol.get("tie") or "stable")
        if abs(got - stored) > 1e-6:
            return (f"WARNING: reloaded codes give {task} mAP@all {got:.4f}, results.json says {stored:.4f} "
                    "(checkpoint and results disagree)")
        checked.append(f"{TASK_NAMES[task]} mAP@all {got:.4f}")
    return ("reloaded codes reproduce results.json: " + ", ".join(checked)) if checked else ""


def plot_examples_for_runs(runs: list[RunResult], out_dir: str | Path, bits: int | None = None, k: int = 8,
                           n_queries: int = 4) -> list[Path]:
    """For each (method row, dataset): the seed-0 (else lowest-seed) run at ``bits`` (default: the largest)."""
    from bitrieve.report.results import row_labels

    labels = row_labels(runs)
    chosen: dict[tuple[str, str], RunResult] = {}
    for r in sorted(runs, key=lambda r: (-r.bits if bits is None else abs(r.bits - bits), r.seed)):
        if bits is not None and r.bits != bits:
            continue
        chosen.setdefault((labels[(r.method, r.variant_sha)], r.dataset), r)
    written: list[Path] = []
    not_drawn: dict[str, list[str]] = {}  # reason -> run directories (one line per reason, not one per run)
    for (row, dataset), r in sorted(chosen.items()):
        try:
            data, q, db = load_codes(r.run_dir)
        except (ReportError, ImportError, KeyError, ValueError, FileNotFoundError) as e:
            not_drawn.setdefault(str(e).removeprefix(f"{r.run_dir}: "), []).append(str(r.run_dir))
            continue
        real = np.issubdtype(next(iter(q.values())).dtype, np.floating)
        check = "real-valued embeddings ranked by cosine (not re-checked)" if real else verify_codes(r, data, q, db)
        spec = str(r.variant.get("data", ""))  # the run's data: 'wiki' or a canonical store directory
        store = Path(spec) if spec and Path(spec).is_dir() else None
        rank = "cosine similarity" if real else "Hamming distance (ties in database order)"
        rel = ("same image group" if "group" in (getattr(data["query"], "extras", {}) or {})
               else "shares a label with the query")
        title = (f"Retrieval examples — {row}, {dataset}, {r.bits} {'dims' if real else 'bits'}, seed {r.seed}: "
                 f"query, then top {k} by {rank}; green ✓ = {rel}\n{check}")
        written += plot_examples(data, q, db, out_dir, f"examples_{slug(row)}_{slug(dataset)}_b{r.bits}", title,
                                 n_queries=n_queries, k=k, store_dir=store)
    for reason, dirs in not_drawn.items():
        shown = ", ".join(dirs[:2]) + (f" and {len(dirs) - 2} more" if len(dirs) > 2 else "")
        print(f"figures: no retrieval examples for {len(dirs)} run{'s' if len(dirs) != 1 else ''} ({shown}): "
              f"{reason}", file=sys.stderr)
    return written
