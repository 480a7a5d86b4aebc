"""The one training loop every method runs through: ``train_run(cfg, run_dir)``.

A method declares its training as ``Stage``s (methods/base.py); this module builds one optimizer per stage with one
parameter group per name in ``stage.groups`` (each at the learning rate ``method.param_groups()`` gives it), applies
the stage's MultiStepLR-style schedule, draws seeded mini-batches, back-propagates ``loss(batch)["loss"]``, logs every
named term, evaluates, checkpoints every epoch and resumes. See docs/engine.md.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bitrieve.codes.encode import as_tensor as to_tensor
from bitrieve.config import ConfigError, RunConfig, dump_config
from bitrieve.console import interactive, progress as progress_bar, status
from bitrieve.data.store import in_memory
from bitrieve.data.types import CrossModalData, Split
from bitrieve.engine import distributed as ddp
from bitrieve.engine import selection
from bitrieve.atomic import write_text_atomic
from bitrieve.checkpoint import CHECKPOINT, STATE, load_checkpoint, save_checkpoint, unflatten_optimizer
from bitrieve.engine.evaluation import collapse_warnings, evaluate_method, evaluation_status, \
    split_extra_evaluations
from bitrieve.engine.movement import ParameterMovement
from bitrieve.engine.runs import card_sha256, clear_run_dir, environment, finished_run, load_run_config, \
    locked_run_dir, write_run_files
from bitrieve.engine.seeding import INIT, batch_order, derive_seed, seed_epoch, seed_everything
from bitrieve.engine.steps import update_batch
from bitrieve.engine.tracking import Tracker
from bitrieve.errors import BitrieveError, TooFewItems
from bitrieve.methods.base import DataInfo, HashMethod, Stage
from bitrieve.record import RECORD_FILE, SCHEMA_VERSION, RunRecord, jsonable, write_record

_ON_DEVICE_BYTES = 2 << 30  # training inputs smaller than this are moved to the device once


class WallTimeExceeded(BitrieveError):
    """``train_run(..., deadline=...)`` stopped after an epoch because the wall-clock deadline had passed; the
    checkpoint of that epoch is saved, so the same call resumes from it."""


# --- devices and precision ----------------------------------------------------------------------------------------
def resolve_device(spec: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu'; 'cuda' / 'cuda:N' (error when CUDA is absent)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"key 'device': expected auto, cpu, cuda or cuda:N, got '{spec}'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"key 'device': '{spec}' requested but CUDA is not available (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"key 'device': '{spec}' but only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"key 'device': expected auto, cpu, cuda or cuda:N, got '{spec}'")
    return dev


def autocast_factory(device: torch.device, amp: str) -> Callable[[], Any]:
    """A zero-argument factory of the autocast context for ``--amp bf16|fp16|off``."""
    if amp == "off":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


# --- building -----------------------------------------------------------------------------------------------------
def data_info(data: CrossModalData) -> DataInfo:
    """What the method may know when it is built: shapes and counts of the train split, never label values."""
    train = data["train"]
    return DataInfo(
        feature_dims={m: int(np.prod(a.shape[1:])) for m, a in train.inputs.items()},
        input_shapes={m: tuple(int(s) for s in a.shape[1:]) for m, a in train.inputs.items()},
        num_labels=int(train.labels.shape[1]),
        num_train=len(train),
        card=dict(data.card),
    )


def build_method(cfg: RunConfig, data: CrossModalData) -> HashMethod:
    """Seeded construction of the configured method (model initialisation depends on the run seed only)."""
    from bitrieve.methods import get_method

    cls = get_method(cfg.method)
    missing = [m for m in cls.modalities if m not in data["train"].inputs]
    if missing:
        raise ConfigError(f"key 'method': '{cfg.method}' needs modalities {list(cls.modalities)}, data '{cfg.data}' "
                          f"has {sorted(data['train'].inputs)}")
    seed_everything(derive_seed(cfg.seed, INIT))
    return cls(cfg.method_params(), cfg.bits, data_info(data))


def make_optimizer(method: HashMethod, stage: Stage) -> tuple[torch.optim.Optimizer, list[float]]:
    """One optimizer for ``stage`` with one parameter group per name in ``stage.groups`` at its own lr."""
    groups = method.param_groups()
    pgs = []
    for name in stage.groups:
        if name not in groups:
            raise ValueError(f"stage '{stage.name}': parameter group '{name}' is not in "
                             f"{type(method).__name__}.param_groups() (has {sorted(groups)})")
        g = dict(groups[name])
        if "lr" not in g or "params" not in g:
            raise ValueError(f"{type(method).__name__}.param_groups()['{name}'] needs 'params' and 'lr'")
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if not g["params"]:
            raise ValueError(f"stage '{stage.name}': parameter group '{name}' has no trainable parameters")
        g["name"] = name
        pgs.append(g)
    if not pgs:
        raise ValueError(f"stage '{stage.name}': no parameter groups (Stage.groups is empty)")
    unknown = sorted(set(stage.schedule_groups or ()) - set(stage.groups))
    if unknown:
        raise ValueError(f"stage '{stage.name}': Stage.schedule_groups names {unknown}, which are not among the "
                         f"stage's groups {stage.groups}")
    kwargs = dict(stage.optimizer_kwargs)
    if stage.optimizer == "sgd":
        opt = torch.optim.SGD(pgs, lr=pgs[0]["lr"], **kwargs)
    elif stage.optimizer == "adam":
        opt = torch.optim.Adam(pgs, lr=pgs[0]["lr"], **kwargs)
    else:
        raise ValueError(f"stage '{stage.name}': unknown optimizer '{stage.optimizer}' (sgd or adam)")
    return opt, [float(g["lr"]) for g in pgs]


def scheduled_lr(base: float, stage: Stage, t: int) -> float:
    """MultiStepLR: ``base * gamma ** (number of milestones <= t)``, t counted in ``stage.schedule_unit``s done."""
    return base * stage.schedule_gamma ** sum(1 for m in stage.schedule_milestones if m <= t)


def set_lrs(opt: torch.optim.Optimizer, bases: list[float], stage: Stage, t: int) -> None:
    """Scheduled lr for the groups in ``stage.schedule_groups`` (all when None); the others keep their base lr."""
    for g, base in zip(opt.param_groups, bases):
        scheduled = stage.schedule_groups is None or g["name"] in stage.schedule_groups
        g["lr"] = scheduled_lr(base, stage, t) if scheduled else base


# --- batches ------------------------------------------------------------------------------------------------------
class TrainInputs:
    """The train split as tensors (on the device when small), and batch assembly."""

    def __init__(self, split: Split, method: HashMethod, device: torch.device):
        from bitrieve.data.store import WidenedArray, whole

        self.device = device
        self.supervised = bool(method.supervised)
        self.tensors = {}
        self.widen: set[str] = set()  # kept uint8 (binary tags, labels) and widened to float32 batch by batch
        for m in method.modalities:
            if isinstance(split.inputs[m], WidenedArray):
                self.widen.add(m)
            self.tensors[m] = to_tensor(whole(split.inputs, m, widen=False))  # a store file read once, as stored
        if self.supervised:
            self.tensors["label"] = to_tensor(np.asarray(split.labels))
            if self.tensors["label"].dtype != torch.float32:
                self.widen.add("label")
        total = sum(t.numel() * t.element_size() for t in self.tensors.values())
        self.on_device = device.type != "cpu" and total < _ON_DEVICE_BYTES
        if self.on_device:
            self.tensors = {k: t.to(device) for k, t in self.tensors.items()}
        self.n = len(split)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = rows.to(self.device) if self.on_device else rows
        out = {k: t[idx].to(self.device, non_blocking=True) for k, t in self.tensors.items()}
        for k in self.widen:
            out[k] = out[k].float()
        out["index"] = rows.to(self.device)
        return out


def fixed_batch(split: Split, method: HashMethod, device: torch.device, size: int
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The first ``size`` training rows (the same at every evaluation) and their labels (monitoring only)."""
    rows = torch.arange(min(size, len(split)))
    b = {m: to_tensor(split.inputs[m][: len(rows)]).to(device) for m in method.modalities}
    b["index"] = rows.to(device)
    labels = torch.from_numpy(np.ascontiguousarray(split.labels[: len(rows)])).float().to(device)
    if method.supervised:
        b["label"] = labels
    return b, labels


# --- one epoch ----------------------------------------------------------------------------------------------------
def run_epoch(method: HashMethod, stage: Stage, si: int, epoch: int, loss_fn, opt, bases: list[float],
              inputs: TrainInputs, scaler, autocast, seed: int, info: ddp.DistInfo, progress: bool
              ) -> dict[str, float]:
    """Train one epoch; returns the mean over batches of every term ``loss_fn`` returns."""
    gen = seed_epoch(seed, si, epoch)
    n = inputs.n if stage.max_rows is None else min(stage.max_rows, inputs.n)
    batches = batch_order(n, stage.batch_size, gen, drop_last=stage.drop_last)
    params = [p for g in opt.param_groups for p in g["params"]]
    if stage.schedule_unit == "epoch":
        set_lrs(opt, bases, stage, epoch)
    sums: dict[str, torch.Tensor] = {}
    method.train()
    bar = progress_bar(batches, desc=f"{stage.name} {epoch + 1}/{stage.epochs}", leave=False, per_epoch=True,
                       enabled=progress and info.is_main)
    for b, rows in enumerate(bar):
        if stage.schedule_unit == "iter":
            set_lrs(opt, bases, stage, epoch * len(batches) + b)
        batch = inputs.batch(rows)  # every rank the whole global batch (engine/distributed.py)
        out = update_batch(stage, loss_fn, batch, opt, params, scaler, autocast, info,  # engine/steps.py
                           f"epoch {epoch + 1} batch {b + 1}")
        loss = out["loss"]
        for k, v in out.items():
            v = v.detach().float()
            sums[k] = sums[k] + v if k in sums else v
        if progress and b % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4g}")
    bar.close()
    nb = max(len(batches), 1)
    means = {k: float(v) / nb for k, v in sums.items()}
    for g in opt.param_groups:
        means[f"lr/{g['name']}"] = float(g["lr"])
    return means


# --- evaluation ---------------------------------------------------------------------------------------------------
def evaluate_all(method: HashMethod, data: CrossModalData, cfg: RunConfig, device, autocast, diag_batch,
                 progress: bool = False) -> dict[str, Any]:
    res = evaluate_method(method, data, cfg, device, autocast, progress=progress)
    was = method.training
    method.eval()
    try:
        with torch.no_grad():
            res["method_diagnostics"] = {k: float(v) for k, v in
                                         (method.diagnostics(diag_batch[0], diag_batch[1]) or {}).items()}
    finally:
        method.train(was)
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


# --- the run ------------------------------------------------------------------------------------------------------
def _summary(record: RunRecord) -> str:
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


@dataclass
class _Run:
    """What the steps of one `train_run` share: the run's identity and devices, its data, the built method and its
    stages, and the training state that the checkpoint carries."""

    cfg: RunConfig
    run_dir: Path
    sha: str
    device: torch.device
    info: ddp.DistInfo
    progress: bool
    t0: float
    data: CrossModalData
    val_data: CrossModalData | None
    val_record: dict[str, Any] | None
    card_hash: str
    env: dict[str, Any]
    tracker: Tracker
    method: HashMethod | None = None
    stages: list[Stage] = field(default_factory=list)
    autocast: Callable[[], Any] = contextlib.nullcontext
    selector: selection.Selector | None = None
    movement: ParameterMovement | None = None
    state: dict[str, Any] = field(default_factory=dict)  # stage, epoch, history, wall_seconds (resumed)
    saved: dict[str, Any] = field(default_factory=dict)  # the checkpoint's JSON state (optimizer, scaler)
    opt_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    diag_batch: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
    global_epoch: int = 0
    last_eval: dict[str, Any] | None = None  # the evaluation of the last epoch (cfg.eval.every), if any

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state["history"]

    def say(self, msg: str) -> None:
        if self.info.is_main:
            status(msg, self.progress)

    def checkpoint(self, si: int, epoch: int, opt, scaler=None) -> None:
        if self.info.is_main:
            save_checkpoint(self.run_dir, self.method, opt, {
                "config_sha256": self.sha, "stage": si, "epoch": epoch, "history": self.history,
                "selection": self.selector.state() if self.selector else None,
                "scaler": scaler.state_dict() if scaler is not None else {},
                "wall_seconds": self.state["wall_seconds"] + time.time() - self.t0})


def _devices(cfg: RunConfig) -> tuple[torch.device, ddp.DistInfo]:
    """The run's device, and the process group under torchrun (each rank on its own GPU)."""
    device = resolve_device(cfg.device)
    info = ddp.init_from_env(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.set_device(device)
    return device, info


def _prepare_run_dir(run_dir: Path, sha: str, resume: bool, overwrite: bool, info: ddp.DistInfo):
    """Clear (``overwrite``) or start (not ``resume``) the run directory; the checkpoint to resume from, or None."""
    if info.is_main:
        if overwrite:
            clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        for tmp in run_dir.glob(".*.tmp"):  # left by a run killed while writing (atomic writes never expose them)
            tmp.unlink(missing_ok=True)
        if not resume:
            for name in (CHECKPOINT, STATE, RECORD_FILE, "summary.txt"):
                (run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(run_dir / "events", ignore_errors=True)
    ddp.barrier(info, "run directory ready")
    ckpt = load_checkpoint(run_dir) if resume else None
    if ckpt is not None and ckpt[2].get("config_sha256") != sha:
        raise ConfigError(f"{run_dir}: holds a checkpoint of a different config (config_sha256 "
                          f"{ckpt[2].get('config_sha256', '?')[:12]} != {sha[:12]}); use --no-resume to start over "
                          "or --out for another run directory")
    return ckpt


def _open_run(cfg: RunConfig, run_dir: Path, sha: str, device: torch.device, info: ddp.DistInfo, progress: bool,
              t0: float) -> _Run:
    """Load the data (and carve the validation split), record the environment and open the tracker."""
    from bitrieve.data import load_data

    if info.is_main:
        status(f"loading data '{cfg.data}'", progress)
    data = load_data(cfg.data)
    card_hash = card_sha256(data.card)
    data, val_data, val_record = selection.setup(cfg, data)  # carve a validation split (selection block only)
    if val_data is not None and info.enabled:
        raise ConfigError("selection: model selection runs in one process (not under torchrun) for now")
    env = environment(device, cfg.seed)
    env["world_size"] = info.world_size
    tracker = Tracker(run_dir, cfg.tracking if info.is_main else "none", cfg.resolved(), echo=False,
                      enabled=info.is_main)
    return _Run(cfg, run_dir, sha, device, info, progress, t0, data, val_data, val_record, card_hash, env, tracker)


def _build(run: _Run, ckpt) -> None:
    """Write the run files, build and prepare the method on the device, and restore the checkpoint's state."""
    cfg, data = run.cfg, run.data
    method = run.method = build_method(cfg, data)
    split_extra_evaluations(method, cfg.eval.extra_evaluations)  # an unknown name fails before training
    run.say(f"{cfg.method}: preparing on the {len(data['train']):,} training items (statistics, graphs, closed-form "
            "fits)")
    method.prepare(in_memory(data["train"]))  # a store's train split read once (methods take plain arrays)
    method.to(run.device)
    if cfg.channels_last:  # the methods' pixel pipelines follow their first convolution's layout
        method.to(memory_format=torch.channels_last)
    run.stages = method.stages()
    for st in run.stages:  # a stage that would take no update on this training split is an error, not a no-op
        n = len(data["train"]) if st.max_rows is None else min(st.max_rows, len(data["train"]))
        if n < 1 or (st.drop_last and n < st.batch_size):
            raise TooFewItems(f"{cfg.method} stage '{st.name}': needs at least {st.batch_size if st.drop_last else 1} "
                              f"training items (batch {st.batch_size}, last incomplete batch dropped), got {n}")
    if run.info.enabled:  # rows of each global batch that one rank's per-row networks compute (parallel.rowwise)
        run.env["per_rank_batch"] = {st.name: -(-st.batch_size // run.info.world_size) for st in run.stages}
    if run.info.is_main:
        write_run_files(run.run_dir, dump_config(cfg), data.card, run.env)
    run.autocast = autocast_factory(run.device, cfg.amp)
    run.state = {"config_sha256": run.sha, "stage": 0, "epoch": 0, "history": [], "wall_seconds": 0.0}
    run.movement = ParameterMovement(method)  # the seeded initial weights (rebuilt identically on resume)
    if run.val_data is not None:
        run.selector = selection.Selector(cfg, run.val_data, run.val_record, run.run_dir, len(run.stages))
    if ckpt is not None:
        model_sd, run.opt_tensors, run.saved = ckpt
        method.load_state_dict({k: v.to(run.device) for k, v in model_sd.items()})
        run.state.update({k: run.saved[k] for k in ("stage", "epoch", "history", "wall_seconds") if k in run.saved})
        if run.selector is not None:
            run.selector.load_state(run.saved.get("selection"))
        run.tracker.log(f"resumed from {CHECKPOINT}: stage {run.state['stage']}, {run.state['epoch']} epoch(s) done")
    run.tracker.log(f"start {cfg.method} on {cfg.data}: {cfg.bits} bits, seed {cfg.seed}, device {run.device}, "
                    f"amp {cfg.amp}, {len(run.stages)} stage(s), world size {run.info.world_size}, config "
                    f"{run.sha[:12]}")
    run.diag_batch = fixed_batch(data["train"], method, run.device,
                                 run.stages[0].batch_size if run.stages else 256)
    run.global_epoch = len(run.history)


def _train_stages(run: _Run, deadline: float | None) -> None:
    """Every stage from where the checkpoint left off: epochs, per-epoch evaluation / validation, checkpoints."""
    cfg, info, method, selector, stages, state = run.cfg, run.info, run.method, run.selector, run.stages, run.state
    inputs = TrainInputs(run.data["train"], method, run.device) if stages else None
    for si, stage in enumerate(stages):
        if si < state["stage"] or (selector is not None and selector.stopped):
            continue
        start = state["epoch"] if si == state["stage"] else 0
        if start >= stage.epochs:
            continue
        resumed = start > 0 and si == state["stage"]
        opt, bases = make_optimizer(method, stage)
        if resumed and run.saved.get("optimizer"):
            opt.load_state_dict(unflatten_optimizer(run.opt_tensors, run.saved["optimizer"]))
        scaler = torch.amp.GradScaler(run.device.type, enabled=cfg.amp == "fp16")
        if resumed and run.saved.get("scaler"):
            scaler.load_state_dict(run.saved["scaler"])
        loss_fn = torch.compile(stage.loss) if cfg.compile and stage.loss is not None else stage.loss
        for epoch in range(start, stage.epochs):
            if selector is not None and selector.stopped:  # early stopping (patience on the validation split)
                break
            te = time.time()
            means = run_epoch(method, stage, si, epoch, loss_fn, opt, bases, inputs, scaler, run.autocast, cfg.seed,
                              info, run.progress)
            run.global_epoch += 1
            entry: dict[str, Any] = {"stage": stage.name, "epoch": epoch + 1, **means}
            run.last_eval = None
            if cfg.eval.every and (epoch + 1) % cfg.eval.every == 0 and info.is_main:
                run.last_eval = evaluate_all(method, run.data, cfg, run.device, run.autocast, run.diag_batch,
                                             run.progress)
                entry.update(flat_eval(run.last_eval))
            if selector is not None and selector.due(si, epoch):
                entry.update(selector.validate(method, run.device, run.autocast, run.global_epoch, run.progress))
            run.history.append(entry)
            _log_epoch(run, stage, epoch, entry, time.time() - te)
            last = epoch + 1 == stage.epochs or (selector is not None and selector.stopped)
            late = deadline is not None and time.time() > deadline and not (last and si == len(stages) - 1)
            if last or late or (epoch + 1) % cfg.checkpoint_every == 0:
                run.checkpoint(si, epoch + 1, opt, scaler)
            ddp.barrier(info, f"{stage.name} epoch {epoch + 1} saved")
            if late:
                raise WallTimeExceeded(f"{run.run_dir}: wall-time limit reached after {stage.name} epoch "
                                       f"{epoch + 1}/{stage.epochs}; checkpoint saved (running again resumes)")


def _log_epoch(run: _Run, stage: Stage, epoch: int, entry: dict[str, Any], seconds: float) -> None:
    terms = ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k not in ("stage", "epoch"))
    line = f"{stage.name} epoch {epoch + 1}/{stage.epochs} ({seconds:.1f}s): {terms}"
    run.tracker.log(line)
    if run.progress and run.info.is_main and not interactive():  # no bar in a log: one line per epoch
        print(line, file=sys.stderr, flush=True)
    run.tracker.scalars({f"train/{k}" if not k.startswith(("eval/", "diag/", "codes/")) else k: v
                         for k, v in entry.items() if isinstance(v, float)}, run.global_epoch)


def _select_kept_model(run: _Run) -> int | None:
    """The model to keep: with a validation split, the last model is scored too and the best one (``keep: best``)
    restored and checkpointed; returns its epoch (None: the last model)."""
    selector, stages = run.selector, run.stages
    if not stages:  # closed-form methods: the fitted buffers are the checkpoint
        run.checkpoint(0, 0, None)
    if selector is None:
        return None
    if not selector.curve or selector.curve[-1]["epoch"] != run.global_epoch:
        selector.validate(run.method, run.device, run.autocast, run.global_epoch, run.progress)
    kept = selector.restore(run.method, run.device)
    if kept is not None and stages:  # the checkpoint holds the kept (best validation) model from now on
        run.checkpoint(len(stages) - 1, stages[-1].epochs, None)
    return kept


def _evaluate_kept(run: _Run) -> tuple[dict[str, Any], bool]:
    """The evaluation of the kept model and whether it covers the test split: the test split is evaluated once,
    for the kept model (validation only with ``evaluate_test: false``); the last epoch's evaluation is reused."""
    tested = run.selector is None or run.cfg.selection.evaluate_test
    if run.last_eval is not None:
        return run.last_eval, tested
    data = run.data if tested else run.val_data
    run.say(evaluation_status(data, run.cfg))
    return evaluate_all(run.method, data, run.cfg, run.device, run.autocast, run.diag_batch, run.progress), tested


def _write_record(run: _Run, ev: dict[str, Any], tested: bool, kept: int | None) -> RunRecord:
    """The run record (results.json) and summary.txt, written atomically."""
    cfg = run.cfg
    record = RunRecord(
        schema=SCHEMA_VERSION, method=cfg.method, dataset=str(run.data.card.get("name", cfg.data)),
        dataset_card_sha256=run.card_hash, config_sha256=run.sha, bits=cfg.bits, seed=cfg.seed,
        **evaluation_fields(ev, tested),
        diagnostics=jsonable({"method": ev["method_diagnostics"], "codes": ev["codes"], "warnings": ev["warnings"],
                              "parameter_movement": run.movement.report(run.method)}),
        history=jsonable(run.history),
        **({"selection": jsonable(run.selector.summary(kept, run.global_epoch))} if run.selector is not None
           else {}),
        env=jsonable(run.env), wall_seconds=run.state["wall_seconds"] + time.time() - run.t0)
    summary = _summary(record)
    write_text_atomic(run.run_dir / "summary.txt", summary + "\n")
    for line in summary.splitlines():
        run.tracker.log(line)
    write_record(run.run_dir, record)
    return record


@locked_run_dir  # a second writer of run_dir fails at once naming our pid (engine/runs.py)
def train_run(cfg: RunConfig, run_dir: str | Path, resume: bool = True, progress: bool = True,
              overwrite: bool = False, deadline: float | None = None) -> dict[str, Any]:
    """Train ``cfg`` in ``run_dir`` (resuming from its checkpoint), evaluate, write results.json and return its
    content (``RunRecord.to_json_dict()``; an empty dict on the other ranks under torchrun).

    A finished run of the same config is skipped; finished results are replaced only with ``overwrite`` (which
    starts over; a directory that is not a run directory is never replaced), never by ``resume=False`` alone.
    ``deadline`` (a ``time.time()`` value): after the first epoch that ends past it, the epoch is checkpointed and
    `WallTimeExceeded` is raised (calling again resumes there).
    """
    t0 = time.time()
    run_dir = Path(run_dir)
    sha = cfg.sha256()  # validates the method params too
    own_group = not ddp.current().enabled  # this call initialises (and so ends) the process group if any
    device, info = _devices(cfg)
    done = finished_run(run_dir, sha, resume, overwrite)  # refuses to replace finished results without overwrite
    if done is not None:
        if progress and info.is_main:
            print(f"{run_dir}: finished run with the same config ({RECORD_FILE} present); skipped (--overwrite "
                  "trains it again)")
        return done.to_json_dict()
    ckpt = _prepare_run_dir(run_dir, sha, resume and not overwrite, overwrite, info)
    run = _open_run(cfg, run_dir, sha, device, info, progress, t0)
    try:
        with ddp.faults_as_one_line(info):
            _build(run, ckpt)
            _train_stages(run, deadline)
        record = None
        if info.is_main:
            kept = _select_kept_model(run)
            ev, tested = _evaluate_kept(run)
            record = _write_record(run, ev, tested, kept)
        ddp.barrier(info, "run record written")
        return record.to_json_dict() if record is not None else {}
    finally:
        run.tracker.close()
        if own_group:
            ddp.shutdown(info)


def load_run(run_dir: str | Path, device: str | None = None, data: CrossModalData | None = None,
             loader: Callable[[str], CrossModalData] | None = None):
    """``(cfg, method)`` of a run: config.yaml -> build on the run's data -> ``prepare`` -> checkpoint's tensors.

    The method is on ``device`` (default: the run's configured device), in eval mode. Loading executes no code from
    the run directory (YAML + safetensors). ``data``: the already loaded dataset, to avoid reading it twice;
    ``loader``: ``data spec -> CrossModalData`` used instead of ``load_data`` (a command's per-process cache, so a
    store is opened once). A store opens lazily: only its train split is read here.
    """
    from bitrieve.config import load_config
    from bitrieve.data import load_data

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a bitrieve run directory)")
    cfg = load_run_config(run_dir) if data is None else load_config(run_dir / "config.yaml")  # data from any cwd
    if device is not None:
        cfg = cfg.model_copy(update={"device": device})
    ckpt = load_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: no {CHECKPOINT} (train the run first: bitrieve train CONFIG --out "
                                f"{run_dir})")
    dev = resolve_device(cfg.device)
    if data is None:
        data = loader(cfg.data) if loader is not None else load_data(cfg.data)
    method = build_method(cfg, data)
    method.prepare(in_memory(data["train"]))  # only the train split is read (lazily opened stores)
    method.to(dev)
    method.load_state_dict({k: v.to(dev) for k, v in ckpt[0].items()})
    method.eval()
    method.checkpoint_state = {"stage": ckpt[2].get("stage"), "epoch": ckpt[2].get("epoch")}
    return cfg, method


def evaluate_run(run_dir: str | Path, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-evaluate a run from its checkpoint (config.yaml + checkpoint.safetensors); returns metrics and diagnostics.

    Nothing in the run directory is changed.
    """
    from bitrieve.config import load_config
    from bitrieve.data import load_data

    if (Path(run_dir) / "config.yaml").is_file():
        cfg0 = load_run_config(run_dir)
        data = selection.setup(cfg0, load_data(cfg0.data))[0]  # the run's own train / query splits
    else:
        data = None
    cfg, method = load_run(run_dir, device, data)
    dev = resolve_device(cfg.device)
    stages = method.stages()
    diag_batch = fixed_batch(data["train"], method, dev, stages[0].batch_size if stages else 256)
    status(evaluation_status(data, cfg), progress)
    res = evaluate_all(method, data, cfg, dev, autocast_factory(dev, cfg.amp), diag_batch, progress)
    return {"method": cfg.method, "dataset": str(data.card.get("name", cfg.data)), "bits": cfg.bits,
            "seed": cfg.seed, "protocol": res["protocol"], "metrics": res["metrics"],
            "protocols": res.get("extra_evaluations", {}),  # file key of schema 1
            "diagnostics": {"method": res["method_diagnostics"], "codes": res["codes"], "warnings": res["warnings"]},
            "checkpoint": method.checkpoint_state}
