"""The one training loop every method runs through: ``train_run(cfg, run_dir)``, the assembly of a run.

A method declares its training as ``Stage``s (methods/base.py). ``train_run``'s steps, each a function here: prepare
the run directory / resume, load the data and build the method, train the stages (one optimizer per stage:
engine/optimizers.py; the epochs: engine/epochs.py), select the kept model (engine/selection.py), evaluate it
(engine/run_evaluation.py) and write the record. See docs/engine.md.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from bitrieve.atomic import write_text_atomic
from bitrieve.checkpoint import CHECKPOINT, save_checkpoint, unflatten_optimizer
from bitrieve.config import RunConfig, dump_config
from bitrieve.console import interactive, status
from bitrieve.data.store import in_memory
from bitrieve.data.types import CrossModalData
from bitrieve.devices import autocast_factory
from bitrieve.engine import distributed as ddp
from bitrieve.engine import selection
from bitrieve.engine.epochs import TrainInputs, fixed_batch, run_epoch
from bitrieve.engine.evaluation import evaluation_status, split_extra_evaluations
from bitrieve.engine.loading import build_method
from bitrieve.engine.movement import ParameterMovement
from bitrieve.engine.optimizers import make_optimizer
from bitrieve.engine.run_evaluation import evaluate_all, evaluation_fields, flat_eval, summary_text
from bitrieve.engine.runs import card_sha256, environment, finished_run, locked_run_dir, prepare_run_dir, \
    write_run_files
from bitrieve.engine.tracking import Tracker
from bitrieve.errors import BitrieveError, ConfigError, TooFewItems
from bitrieve.methods.base import HashMethod, Stage
from bitrieve.record import RECORD_FILE, SCHEMA_VERSION, RunRecord, jsonable, write_record


class WallTimeExceeded(BitrieveError):
    """``train_run(..., deadline=...)`` stopped after an epoch because the wall-clock deadline had passed; the
    checkpoint of that epoch is saved, so the same call resumes from it."""


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
    summary = summary_text(record)
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
    device, info = ddp.run_devices(cfg.device)
    done = finished_run(run_dir, sha, resume, overwrite)  # refuses to replace finished results without overwrite
    if done is not None:
        if progress and info.is_main:
            print(f"{run_dir}: finished run with the same config ({RECORD_FILE} present); skipped (--overwrite "
                  "trains it again)")
        return done.to_json_dict()
    ckpt = prepare_run_dir(run_dir, sha, resume and not overwrite, overwrite, info)
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
