"""Evaluating a run's model: the one evaluation of a method on a run's data (``evaluate_all``: metrics, extra
evaluations, code and method diagnostics), the record blocks it fills, the run summary, and the evaluations of a
stored run from its checkpoint (``evaluate_run``: ``bitrieve eval``; ``evaluate_test_split``: ``bitrieve sweep
--select``). The trainer and model selection both use this module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bitrieve.codes.encode import eval_mode
from bitrieve.config import RunConfig
from bitrieve.console import status
from bitrieve.data.types import CrossModalData
from bitrieve.devices import autocast_factory, resolve_device
from bitrieve.engine.epochs import fixed_batch
from bitrieve.engine.evaluation import collapse_warnings, evaluate_method, evaluation_status
from bitrieve.engine.loading import load_run
from bitrieve.engine.runs import load_run_config
from bitrieve.engine.selection import setup
from bitrieve.methods.base import HashMethod
from bitrieve.record import RunRecord, jsonable


def evaluate_all(method: HashMethod, data: CrossModalData, cfg: RunConfig, device, autocast, diag_batch,
                 progress: bool = False) -> dict[str, Any]:
    """`evaluate_method` (metrics, extra evaluations, curves, protocol, code statistics), the method's diagnostics
    on the fixed training batch and the collapse warnings: what a run record holds of one evaluation."""
    res = evaluate_method(method, data, cfg, device, autocast, progress=progress)
    with eval_mode(method), torch.no_grad():
        res["method_diagnostics"] = {k: float(v) for k, v in
                                     (method.diagnostics(diag_batch[0], diag_batch[1]) or {}).items()}
    res["warnings"] = collapse_warnings(res["codes"]) if res.get("hash_codes", True) else []
    return res


def flat_eval(res: dict[str, Any]) -> dict[str, float]:
    """Scalars of one evaluation for the history / TensorBoard: eval/<task>/<metric>, diag/<name>, codes/..."""
    out = {}
    for task, vals in res["metrics"].items():
        for k, v in vals.items():
            if isinstance(v, (int, float)):
                out[f"eval/{task}/{k}"] = float(v)
    for k, v in res["method_diagnostics"].items():
        out[f"diag/{k}"] = v
    for m, d in res["codes"].items():
        for k in ("mean_abs_bit_balance", "mean_bit_entropy", "distinct_codes", "quantization_gap"):
            out[f"codes/{m}/{k}"] = d[k]
    return out


def format_metrics(metrics: dict[str, dict[str, Any]]) -> str:
    """A short plain-text table: one row per task, one column per metric."""
    keys: list[str] = []
    for vals in metrics.values():
        keys += [k for k, v in vals.items() if isinstance(v, (int, float)) and k not in keys]
    lines = ["task  " + "  ".join(f"{k:>12}" for k in keys)]
    for task, vals in metrics.items():
        cells = []
        for k in keys:
            v = vals.get(k)
            cells.append(f"{'-':>12}" if v is None else f"{v:>12d}" if isinstance(v, int) else f"{v:>12.4f}")
        lines.append(f"{task:<5} " + "  ".join(cells))
    return "\n".join(lines)


def summary_text(record: RunRecord) -> str:
    """The run summary (summary.txt and the log): protocol, metrics, code statistics, warnings, selection."""
    protocol = record.protocol.model_dump(exclude_unset=True)
    lines = [f"run summary: {record.method} on {record.dataset}, {record.bits} bits, seed {record.seed}",
             "protocol: " + ", ".join(f"{k} {v}" for k, v in protocol.items()), format_metrics(record.metrics)]
    for m, d in record.diagnostics.codes.items():
        lines.append(f"codes ({m}, retrieval set): mean |bit balance| {d.mean_abs_bit_balance:.3f}, constant bits "
                     f"{int(d.constant_bits)}, mean bit entropy {d.mean_bit_entropy:.3f}, distinct codes "
                     f"{int(d.distinct_codes)} of {int(d.n_items)}, largest code share "
                     f"{d.largest_code_share:.1%}, quantization gap {d.quantization_gap:.3f}")
    warnings = record.diagnostics.warnings
    lines += warnings if warnings else ["no collapse detected (bits vary, codes are diverse)"]
    moved = record.diagnostics.parameter_movement
    if moved is not None and moved.groups:
        lines.append("weights moved beyond a rescaling (‖Δw⊥‖ / ‖w₀‖): " + ", ".join(
            f"{k} {g.beyond_decay:.2%}" for k, g in moved.groups.items() if g.beyond_decay is not None))
    lines += moved.warnings if moved is not None else []
    sel = record.selection
    if sel is not None:
        sp = sel.split
        lines.append(f"selection: validation split '{sp.source}' ({sp.n_validation} queries vs "
                     f"{sp.n_validation_database} items, seed {sp.seed}), {sel.metric}: best "
                     f"{sel.best_score:.4f} at epoch {sel.best_epoch}, kept epoch {sel.kept_epoch} of "
                     f"{sel.last_epoch}" + (" (stopped early)" if sel.stopped_early else "")
                     + ("" if sel.test_evaluated else "; test split NOT evaluated"))
    return "\n".join(lines)


def evaluation_fields(ev: dict[str, Any], tested: bool = True) -> dict[str, Any]:
    """The record's evaluation blocks from one `evaluate_all` result; without the test split (``tested`` false:
    selection with ``evaluate_test: false``) only the protocol, and empty metrics, extra evaluations and curves."""
    return jsonable({"protocol": ev["protocol"], "metrics": ev["metrics"] if tested else {},
                     "protocols": ev.get("extra_evaluations", {}) if tested else {},  # file key of schema 1
                     "curves": ev.get("curves", {}) if tested else {}})


def with_test_evaluation(record: RunRecord, ev: dict[str, Any], by: str) -> RunRecord:
    """``record`` of an ``evaluate_test: false`` run with the test split's evaluation ``ev`` filled in."""
    d = record.to_json_dict()
    d.update(evaluation_fields(ev))
    d["diagnostics"].update(jsonable({"codes": ev["codes"], "warnings": ev["warnings"]}))
    d["selection"].update(test_evaluated=True, test_evaluated_by=by)
    return RunRecord.model_validate(d)


def evaluate_stored_run(run_dir: str | Path, device: str | None = None, progress: bool = False,
                        announce: bool = False) -> tuple[RunConfig, HashMethod, CrossModalData, dict[str, Any]]:
    """``(cfg, method, data, evaluate_all result)`` of a trained run, rebuilt from its directory (`load_run`) on its
    own data (the splits its ``selection`` block carved), evaluated as at the end of its training. ``announce``
    prints the status line first. Nothing in the run directory is changed."""
    from bitrieve.data import load_data

    if (Path(run_dir) / "config.yaml").is_file():
        cfg0 = load_run_config(run_dir)
        data = setup(cfg0, load_data(cfg0.data))[0]  # the run's own train / query splits
    else:
        data = None  # load_run names what is missing
    cfg, method = load_run(run_dir, device, data)
    dev = resolve_device(cfg.device)
    stages = method.stages()
    diag_batch = fixed_batch(data["train"], method, dev, stages[0].batch_size if stages else 256)
    if announce:
        status(evaluation_status(data, cfg), progress)
    return cfg, method, data, evaluate_all(method, data, cfg, dev, autocast_factory(dev, cfg.amp), diag_batch,
                                           progress)


def evaluate_run(run_dir: str | Path, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-evaluate a run from its checkpoint (config.yaml + checkpoint.safetensors); returns metrics and diagnostics
    (``bitrieve eval``). Nothing in the run directory is changed."""
    cfg, method, data, res = evaluate_stored_run(run_dir, device, progress, announce=True)
    return {"method": cfg.method, "dataset": str(data.card.get("name", cfg.data)), "bits": cfg.bits,
            "seed": cfg.seed, "protocol": res["protocol"], "metrics": res["metrics"],
            "protocols": res.get("extra_evaluations", {}),  # file key of schema 1
            "diagnostics": {"method": res["method_diagnostics"], "codes": res["codes"], "warnings": res["warnings"]},
            "checkpoint": method.checkpoint_state}


def evaluate_test_split(run_dir: str | Path, progress: bool = False) -> RunRecord:
    """Evaluate the test split of a finished ``evaluate_test: false`` run from its kept checkpoint and write the test
    metrics into its results.json (atomically). Used by ``bitrieve sweep --select`` for the chosen candidate only."""
    from bitrieve.engine.runs import stored_record
    from bitrieve.record import RECORD_FILE, write_record

    run_dir = Path(run_dir)
    record = stored_record(run_dir)
    if record is None:
        raise FileNotFoundError(f"{run_dir}: no {RECORD_FILE} (train the run first)")
    if record.selection is not None and record.selection.test_evaluated:
        return record
    ev = evaluate_stored_run(run_dir, progress=progress)[3]
    record = with_test_evaluation(record, ev, by="bitrieve sweep --select (the chosen candidate only)")
    write_record(run_dir, record)
    return record
