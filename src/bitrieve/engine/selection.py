"""Model selection on a validation split (DESIGN.md "Splits"): the seeded carve, best-checkpoint keeping with
patience, and the test evaluation of a kept checkpoint.

A run config with a ``selection:`` block (bitrieve.config.SelectionConfig; docs/engine.md lists the keys) gets

- a **validation split**, stored in results.json (its ids): ``split: train`` (default) draws ``size`` rows of the
  training split with ``numpy.random.default_rng(seed)`` - a split seed separate from the training seed - and removes
  them from training (caption data: whole images with all their captions); ``split: query`` draws them from the query split instead (the DGCPN release's carve: on Wiki
  231 validation / 462 query of the 693 test pairs; a labelled switch, since it changes the test queries); any other
  name takes that split of the store as it is (caption stores' ``dev``). Validation queries are ranked against the
  retrieval set minus the validation rows (so a query never meets itself); embedding methods (VSE++) compute their
  Recall@K / rsum within the validation split, as the official code does on dev;
- a **validation curve**: every ``every`` epochs of the last stage the validation split is encoded and scored by
  ``metric`` (any key of the evaluator's per-task metrics, e.g. ``map@all``, ``map@50``, ``rsum``; mean over the
  evaluated tasks); the best model so far is kept in ``best.safetensors`` (model tensors only, atomic), and the
  selection state travels in the checkpoint, so an interrupted run resumes with its curve;
- **early stopping**: ``patience`` validations without an improvement larger than ``min_delta`` stop training;
- **the kept checkpoint**: with ``keep: best`` the best model is restored before the test split is evaluated, so
  the test split is evaluated once, for the kept checkpoint only, and ``checkpoint.safetensors`` holds that model.
  With ``evaluate_test: false`` (used by ``bitrieve sweep --select``) the test split is not evaluated at all; the
  sweep calls ``engine/run_evaluation.py: evaluate_test_split`` for the chosen candidate's runs only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bitrieve.data.types import CrossModalData, DataError

BEST = "best.safetensors"


def _rows_of(size: float, n: int, what: str) -> int:
    k = int(round(size * n)) if size < 1 else int(size)
    if not 1 <= k < n:
        raise DataError(f"selection.size: {size} gives {k} validation rows out of the {n} rows of {what}; expected "
                        f"between 1 and {n - 1}")
    return k


def carve_validation(data: CrossModalData, sel) -> tuple[CrossModalData, CrossModalData, dict[str, Any]]:
    """``(data for training and testing, validation data, split record)`` for a ``SelectionConfig``.

    The validation data has ``query`` = the validation rows and ``retrieval`` = their database. The split record
    (stored in results.json) names the source, seed, counts and the validation ids.
    """
    from bitrieve.data.extras import extras_of

    splits = dict(data.splits)
    if sel.split in ("train", "query"):
        src = splits[sel.split]
        group = extras_of(src).get("group")  # caption rows of one image go to the same side
        units = np.unique(group) if group is not None else np.arange(len(src))
        k = _rows_of(sel.size, len(units), f"the '{sel.split}' split" + (" (images)" if group is not None else ""))
        perm = np.random.default_rng(sel.seed).permutation(len(units))
        if group is None:
            val_rows = perm[:k]  # drawn order (never a sorted, class-correlated order: see data/splits.py)
        else:
            rank = {int(u): i for i, u in enumerate(units[perm[:k]])}
            members = np.flatnonzero(np.isin(group, units[perm[:k]]))
            val_rows = members[np.argsort([rank[int(g)] for g in group[members]], kind="stable")]
        keep_rows = np.setdiff1d(np.arange(len(src)), val_rows)  # the rest keeps its original order
        val = src.subset(val_rows)
        if sel.split == "train":
            splits["train"] = src.subset(keep_rows)
        else:
            splits["query"] = src.subset(keep_rows)
    else:
        if sel.split not in splits:
            raise DataError(f"selection.split: the data has no split '{sel.split}' (has {sorted(splits)}); use "
                            "'train' (carve from training) or 'query' (carve from the test queries)")
        val = splits.pop(sel.split)
    retrieval = data.splits["retrieval"]
    outside = ~np.isin(retrieval.ids, val.ids)  # a validation query never meets itself in its database
    val_db = retrieval if outside.all() else retrieval.subset(np.flatnonzero(outside))
    overlap = np.intersect1d(val.ids, splits["train"].ids)
    if len(overlap):
        raise DataError(f"selection.split '{sel.split}': {len(overlap)} validation rows are also training rows")
    if sel.split != "query" and np.intersect1d(val.ids, splits["query"].ids).size:
        raise DataError(f"selection.split '{sel.split}': validation rows overlap the query split")
    train_view = CrossModalData(splits, dict(data.card))
    val_data = CrossModalData({"train": splits["train"], "query": val, "retrieval": val_db}, dict(data.card))
    record = {"source": sel.split, "seed": sel.seed if sel.split in ("train", "query") else None,
              "size": sel.size, "n_validation": len(val), "n_validation_database": len(val_db),
              "n_train": len(splits["train"]), "n_query": len(splits["query"]),
              "ids": [int(i) for i in val.ids]}
    return train_view, val_data, record


class Selector:
    """The validation curve, the best score / epoch, patience and the best model's file in the run directory."""

    def __init__(self, cfg, val_data: CrossModalData, record: dict[str, Any], run_dir: Path, n_stages: int):
        self.cfg, self.sel = cfg, cfg.selection
        self.val_data, self.record, self.run_dir = val_data, record, Path(run_dir)
        self.last_stage = n_stages - 1
        self.curve: list[dict[str, Any]] = []
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad = 0
        self.stopped = False
        # the validation evaluation: the run's tasks and tie policy, no extra protocols, every validation query
        self.val_cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"extra_evaluations": [],
                                                                                   "query_limit": None})})

    # --- state carried by the checkpoint ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"curve": self.curve, "best_score": self.best_score, "best_epoch": self.best_epoch, "bad": self.bad,
                "stopped": self.stopped}

    def load_state(self, st: dict[str, Any] | None) -> None:
        if st:
            self.curve, self.best_score, self.best_epoch = list(st["curve"]), st["best_score"], st["best_epoch"]
            self.bad, self.stopped = int(st["bad"]), bool(st["stopped"])

    # --- the curve ---------------------------------------------------------------------------------------------
    def due(self, stage_index: int, epoch_in_stage: int) -> bool:
        return stage_index == self.last_stage and (epoch_in_stage + 1) % self.sel.every == 0

    def score(self, method, device, autocast, progress: bool = False) -> tuple[float, dict[str, float]]:
        """Validation score (``metric``, mean over the evaluated tasks) and the per-task values."""
        from bitrieve.engine.evaluation import evaluate_method

        res = evaluate_method(method, self.val_data, self.val_cfg, device, autocast, progress=progress)
        per_task = {}
        for task, vals in res["metrics"].items():
            if self.sel.metric not in vals:
                raise ValueError(f"selection.metric: '{self.sel.metric}' is not among the validation metrics of task "
                                 f"'{task}' ({sorted(k for k, v in vals.items() if isinstance(v, float))})")
            per_task[task] = float(vals[self.sel.metric])
        return float(np.mean(list(per_task.values()))), per_task

    def validate(self, method, device, autocast, epoch: int, progress: bool = False) -> dict[str, float]:
        """Score the current model (``epoch``: epochs trained so far, all stages); keep it when it is the best."""
        from bitrieve.checkpoint import save_model

        value, per_task = self.score(method, device, autocast, progress)
        improved = self.best_score is None or value > self.best_score + self.sel.min_delta
        self.curve.append({"epoch": epoch, "score": value, **{f"{t}": v for t, v in per_task.items()}})
        if improved:
            self.best_score, self.best_epoch, self.bad = value, epoch, 0
            save_model(self.run_dir / BEST, method)
        else:
            self.bad += 1
            if self.sel.patience is not None and self.bad >= self.sel.patience:
                self.stopped = True
        return {f"val/{self.sel.metric}": value, **{f"val/{t}/{self.sel.metric}": v for t, v in per_task.items()}}

    def restore(self, method, device) -> int | None:
        """Load the kept model into ``method`` (``keep: best``); returns the kept epoch (None: the last model)."""
        from bitrieve.checkpoint import load_model

        if self.sel.keep != "best" or self.best_epoch is None:
            return None
        load_model(self.run_dir / BEST, method, device)
        return self.best_epoch

    def summary(self, kept_epoch: int | None, last_epoch: int) -> dict[str, Any]:
        return {"split": self.record, "metric": self.sel.metric, "tasks": list(self.val_cfg.eval.tasks),
                "every": self.sel.every, "patience": self.sel.patience, "min_delta": self.sel.min_delta,
                "keep": self.sel.keep, "curve": self.curve, "best_epoch": self.best_epoch,
                "best_score": self.best_score, "stopped_early": self.stopped, "last_epoch": last_epoch,
                "kept_epoch": kept_epoch if kept_epoch is not None else last_epoch,
                "test_evaluated": bool(self.sel.evaluate_test)}


def setup(cfg, data: CrossModalData) -> tuple[CrossModalData, CrossModalData | None, dict[str, Any] | None]:
    """``(data for training and testing, validation data, split record)``; without a ``selection`` block the data is
    returned unchanged with ``None, None``."""
    if cfg.selection is None:
        return data, None, None
    return carve_validation(data, cfg.selection)
