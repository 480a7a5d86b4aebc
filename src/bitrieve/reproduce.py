"""``bitrieve reproduce cifar10``: DSH and GreedyHash on their papers' CIFAR-10 protocols, in one command, on one
CUDA GPU, beside the papers' numbers (docs/methods/dsh.md, docs/methods/greedyhash.md).

The pack is a list of ordinary runs: each is a config of configs/ with command-line-style overrides, trained by the
engine's ``train_run`` (checkpoint every epoch, resume, results.json), so running the pack again skips finished runs
and resumes an interrupted one. A wall-time limit (``--time-limit``) stops the pack after the epoch that crosses
it, checkpointed; running it again continues.

- DSH (Liu et al., CVPR 2016), protocol ``cifar10-dsh``: the small CNN from scratch, 70,000 iterations of 200 at
  12 bits; 24/36/48 bits start from the 12-bit model as the official ``finetune.sh`` (``--dsh-from-scratch``: every
  length from scratch with the 12-bit schedule).
- GreedyHash (Su et al., NeurIPS 2018), CIFAR-10 (I) (``cifar10-1``): fine-tuned end to end from EfficientNet-Lite0
  ImageNet weights at 224 px (the paper: AlexNet), paper optimiser, 12/24/32/48 bits.

``--smoke``: the same pack on a few hundred images with tiny iteration counts, on the CPU, in about a minute (the
numbers mean nothing; it proves the pack runs end to end). Without ``--smoke`` a CUDA device is required.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitrieve.errors import BitrieveError
from bitrieve.options import positive_float_option


class PackError(BitrieveError):
    """The pack cannot run as asked (no CUDA for the full pack, missing data or configs)."""


# Published mAP@all per code length (targets, typed from the papers' tables; the only typed numbers of the pack)
DSH_PAPER = {12: 0.6157, 24: 0.6512, 36: 0.6607, 48: 0.6755}  # Liu et al., CVPR 2016, Table 1 (CIFAR-10)
GREEDYHASH_PAPER = {12: 0.774, 24: 0.795, 32: 0.810, 48: 0.822}  # Su et al., NeurIPS 2018, Table 2, CIFAR-10 (I)
GREEDYHASH_PADDLE = {12: 0.798, 24: 0.809, 32: 0.817, 48: 0.819}  # hatimwen/paddle_greedyhash README

DSH_STORE, GREEDYHASH_STORE = "cifar10-pixels-dsh", "cifar10-1-pixels"
# smoke scale: rows per class drawn from the JPEG copy, and the scaled-down protocols' per-class counts
SMOKE_TRAIN_PER_CLASS, SMOKE_TEST_PER_CLASS = 20, 10
SMOKE_QUERY_PER_CLASS, SMOKE_GH_TRAIN_PER_CLASS = 5, 10


@dataclass
class PackRun:
    key: str                       # "dsh/b12": also the run directory under --out
    method: str
    config: str                    # file name in configs/
    bits: int
    overrides: list[str] = field(default_factory=list)
    init_from: str | None = None   # key of the run whose directory becomes params.init_from


# mixed precision per method: GreedyHash's EfficientNet-Lite0 at 224 px is where bf16 pays; DSH's small CNN on 32 px
# images is bound by kernel launches, not arithmetic, so it stays fp32 (bf16 is tested to track fp32 for both)
DEFAULT_AMP = {"dsh": "off", "greedyhash": "bf16"}


def plan(smoke: bool, dsh_from_scratch: bool = False, amp: str | None = None) -> list[PackRun]:
    """The pack's runs in order (a run that initialises another comes first). ``amp``: one setting for every run
    instead of `DEFAULT_AMP`."""
    base = ["channels_last=true", "tracking=none"]
    if smoke:
        base.append("device=cpu")
        dsh_small = ["params.batch_size=50", "params.iterations=4", "params.lr_decay_iters=[2]"]
        dsh_more = dsh_small
        gh = ["params.epochs=2", "params.lr_decay_epochs=[1]", "params.image_size=64"]
    else:
        base.append("device=cuda")
        dsh_small, dsh_more, gh = [], [], []
    common = [f"amp={amp or DEFAULT_AMP['dsh']}"] + base
    gh = [f"amp={amp or DEFAULT_AMP['greedyhash']}"] + base + gh
    runs = [PackRun("dsh/b12", "dsh", "dsh_cifar10.yaml", 12, common + dsh_small)]
    for b in (24, 36, 48):
        if dsh_from_scratch:
            runs.append(PackRun(f"dsh/b{b}", "dsh", "dsh_cifar10.yaml", b, common + dsh_small))
        else:
            runs.append(PackRun(f"dsh/b{b}", "dsh", "dsh_cifar10_finetune.yaml", b, common + dsh_more, "dsh/b12"))
    runs += [PackRun(f"greedyhash/b{b}", "greedyhash", "greedyhash_cifar10_lite0.yaml", b, gh)
             for b in (12, 24, 32, 48)]
    return runs


# --- stores -------------------------------------------------------------------------------------------------------
def build_stores(cifar: Path, stores: Path, smoke: bool, progress: bool = True) -> dict[str, Path]:
    """The two pixel stores (32x32 uint8) from the CIFAR-10 JPEG copy, each image decoded once; existing stores
    are kept. Smoke: a per-class sample of the JPEG copy split by scaled-down protocols."""
    import numpy as np

    from bitrieve.console import status
    from bitrieve.data.convert import ConvertOptions, build_source
    from bitrieve.data.images import ImageSource
    from bitrieve.data.splits import cifar10_1_scaled, get_split
    from bitrieve.data.readers import read_source
    from bitrieve.data.source import Source, validate_source
    from bitrieve.data.store import save_store

    paths = {"dsh": stores / DSH_STORE, "greedyhash": stores / GREEDYHASH_STORE}
    todo = {k: p for k, p in paths.items() if not (p / "card.json").is_file()}
    if not todo:
        return paths
    if not cifar.is_dir():
        raise PackError(f"--cifar {cifar}: not a directory; expected the CIFAR-10 JPEG copy "
                        "(cifar10_train_jpg.zip, cifar10_test_jpg.zip; ../shared/data/cifar10-jpg)")
    status(f"decoding the CIFAR-10 JPEG copy once for {', '.join(str(p) for p in todo.values())}")
    src = validate_source(read_source("cifar10-jpg", str(cifar)))
    if smoke:  # the first rows of each class in each official split: a small, fixed, balanced sample
        cls = src.labels.argmax(1)
        rows = [np.flatnonzero((src.official == s) & (cls == c))[:k] for s, k in
                (("train", SMOKE_TRAIN_PER_CLASS), ("test", SMOKE_TEST_PER_CLASS)) for c in range(10)]
        src = src.subset(np.sort(np.concatenate(rows)))
        src.card = {**src.card, "name": "cifar10-jpg-smoke",
                    "notes": [f"SMOKE SAMPLE: {SMOKE_TRAIN_PER_CLASS} train + {SMOKE_TEST_PER_CLASS} test images "
                              "per class of the JPEG copy (bitrieve reproduce --smoke); not a benchmark"]}
    pixels = src.inputs["image"].pixels(progress=progress)  # (N, 3, 32, 32) uint8, decoded once for both stores
    src = Source({"image": ImageSource(arrays=pixels.transpose(0, 2, 3, 1),
                                       description=src.inputs["image"].description)},
                 src.labels, src.ids, src.card, src.official, src.extras)
    protos = {"dsh": get_split("cifar10-dsh"),
              "greedyhash": cifar10_1_scaled(SMOKE_QUERY_PER_CLASS, SMOKE_GH_TRAIN_PER_CLASS) if smoke
              else get_split("cifar10-1")}
    for k, dest in todo.items():
        out = build_source(src, "cifar10-jpg", ConvertOptions(dest=dest, progress=False), recipe=protos[k])
        save_store(out.data, dest, split_indices=out.split_indices)
        status(f"wrote {dest}: " + ", ".join(f"{s} {n}" for s, n in out.data.card["counts"].items()))
    return paths


# --- the runs -----------------------------------------------------------------------------------------------------
def run_pack(out: Path, configs: Path, stores: dict[str, Path], runs: list[PackRun], time_limit: float,
             progress: bool = True) -> dict[str, dict[str, Any]]:
    """Train the runs in order through ``train_run``; returns key -> {"results": ..., "state": done|stopped|
    not started}. Stops (checkpointed, resumable) at the wall-time limit."""
    from bitrieve.config import load_config
    from bitrieve.console import status
    from bitrieve.engine import WallTimeExceeded, train_run

    deadline = time.time() + time_limit
    done: dict[str, dict[str, Any]] = {}
    stopped = False
    for r in runs:
        run_dir = out / r.key
        if stopped or time.time() > deadline:
            stopped = True
            done[r.key] = {"state": "not started", "results": None}
            continue
        cfg_path = configs / r.config
        if not cfg_path.is_file():
            raise PackError(f"{cfg_path}: config not found (run from the repository root, or pass --configs)")
        overrides = [f"bits={r.bits}", f"data={stores[r.method]}"] + r.overrides
        if r.init_from is not None:
            overrides.append(f"params.init_from={out / r.init_from}")
        cfg = load_config(cfg_path, overrides)
        status(f"pack: {r.key} ({r.config}, {r.bits} bits) -> {run_dir}")
        try:
            res = train_run(cfg, run_dir, progress=progress, deadline=deadline)
        except WallTimeExceeded as e:
            status(f"pack: {e}")
            stopped = True
            done[r.key] = {"state": "stopped", "results": None}
            continue
        done[r.key] = {"state": "done", "results": res}
    return done


def _map(res: dict[str, Any] | None) -> float | None:
    return None if res is None else res["metrics"]["i2i"]["map@all"]


def format_table(runs: list[PackRun], done: dict[str, dict[str, Any]], smoke: bool, wall: float) -> str:
    """Markdown: one table per method, bitrieve beside the papers, backbone and protocol named in each."""
    def cell(v: float | None, state: str = "done") -> str:
        return f"{v:.4f}" if v is not None else {"stopped": "stopped (resumable)"}.get(state, "not run")

    def paper(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"  # as printed in the paper

    amps = {m: o.split("=", 1)[1] for r in runs for m in [r.method] for o in r.overrides if o.startswith("amp=")}
    amp_note = "autocast " + ", ".join(f"{m} {a}" for m, a in amps.items()) + "; channels-last"

    devices = {r["results"]["env"].get("gpu") or r["results"]["env"].get("device")
               for r in done.values() if r["results"]}
    smoke_note = " (SMOKE: tiny data and iteration counts; the numbers mean nothing)" if smoke else ""
    lines = [f"# CIFAR-10 reproduction pack{smoke_note}",
             "", f"Device: {', '.join(sorted(devices)) or 'none'}; wall time of this invocation {wall:.0f} s; "
             f"{amp_note}. mAP@all, Hamming ranking of sign codes, ties by database order, relevance = same class, "
             "seed 0." + (" SMOKE SCALE: the splits below are per-class samples of a few hundred images, not the "
                          "protocols named." if smoke else ""), ""]
    dsh = [r for r in runs if r.method == "dsh"]
    lines += ["## DSH: protocol cifar10-dsh (train 50,000; the 10,000 test images are queries and database)", "",
              "Backbone: the paper's small CNN from scratch (same as the paper); longer codes "
              + ("from scratch." if all(r.init_from is None for r in dsh[1:]) else
                 "start from the 12-bit model (official finetune.sh)."), "",
              "| bits | paper (Liu et al. 2016) | bitrieve | training | wall s |", "|---|---|---|---|---|"]
    for r in dsh:
        d = done.get(r.key, {"state": "not started", "results": None})
        how = "from 12-bit model" if r.init_from else "from scratch"
        wall_s = f"{d['results']['wall_seconds']:.0f}" if d["results"] else "-"
        lines.append(f"| {r.bits} | {paper(DSH_PAPER.get(r.bits))} | {cell(_map(d['results']), d['state'])} | {how} "
                     f"| {wall_s} |")
    lines += ["", "## GreedyHash: CIFAR-10 (I) (1,000 query / 59,000 database / 5,000 train)", "",
              "BACKBONE DIFFERS: bitrieve fine-tunes EfficientNet-Lite0 (ImageNet) end to end; the paper and the "
              "Paddle reproduction fine-tune AlexNet (ImageNet). Paper optimiser and schedule, 224 px"
              + (" (smoke: 64 px)" if smoke else "") + ".", "",
              "| bits | paper (AlexNet) | Paddle (AlexNet) | bitrieve (EfficientNet-Lite0) | wall s |",
              "|---|---|---|---|---|"]
    for r in (r for r in runs if r.method == "greedyhash"):
        d = done.get(r.key, {"state": "not started", "results": None})
        wall_s = f"{d['results']['wall_seconds']:.0f}" if d["results"] else "-"
        lines.append(f"| {r.bits} | {paper(GREEDYHASH_PAPER.get(r.bits))} | {paper(GREEDYHASH_PADDLE.get(r.bits))} | "
                     f"{cell(_map(d['results']), d['state'])} | {wall_s} |")
    return "\n".join(lines) + "\n"


def reproduce_cifar10(out: Path, configs: Path, cifar: Path, stores: Path | None, smoke: bool,
                      time_limit: float, dsh_from_scratch: bool = False, amp: str | None = None,
                      progress: bool = True) -> str:
    """The whole pack: stores, runs, table (printed and written to OUT/table.md). Returns the table."""
    import torch

    from bitrieve.atomic import write_text_atomic

    if not smoke and not torch.cuda.is_available():
        raise PackError("the full pack needs a CUDA GPU (DSH's 4 x 70,000 iterations and four end-to-end "
                        "EfficientNet-Lite0 fine-tunings take many hours on a CPU); run `bitrieve reproduce cifar10 "
                        "--smoke` to check the pipeline on this machine")
    t0 = time.time()
    stores = stores if stores is not None else (out / "stores" if smoke else Path("stores"))
    paths = build_stores(cifar, stores, smoke, progress)
    runs = plan(smoke, dsh_from_scratch, amp)
    done = run_pack(out, configs, paths, runs, time_limit - (time.time() - t0), progress)
    table = format_table(runs, done, smoke, time.time() - t0)
    write_text_atomic(out / "table.md", table)
    return table


# --- command line -------------------------------------------------------------------------------------------------
def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="paper-protocol reproduction packs (one CUDA GPU; --smoke on CPU)",
                       description="Train a reproduction pack through the engine (resumable; finished runs are "
                                   "skipped) and print its table beside the papers' numbers.")
    p.add_argument("pack", choices=["cifar10"], help="cifar10: DSH (cifar10-dsh) and GreedyHash (CIFAR-10 (I))")
    p.add_argument("--smoke", action="store_true", help="tiny data and iteration counts on the CPU (about a minute)")
    p.add_argument("--out", default=None, help="pack directory (default: runs/reproduce-cifar10[-smoke])")
    p.add_argument("--cifar", default=None, help="the CIFAR-10 JPEG copy (two zips; default: "
                                                 "$BITRIEVE_SHARED_DATA/cifar10-jpg, else ../shared/data/cifar10-jpg)")
    p.add_argument("--stores", default=None, help="where the pixel stores are (built when missing; default: "
                                                  "stores/, or OUT/stores with --smoke)")
    p.add_argument("--configs", default="configs", help="the configs directory (default: configs)")
    p.add_argument("--time-limit", type=positive_float_option, default=None, metavar="SECONDS",
                   help="wall-time limit of the pack (default 600; 300 with --smoke); stops after the epoch that "
                        "crosses it, checkpointed: running again resumes")
    p.add_argument("--amp", choices=["off", "bf16"], default=None,
                   help="mixed precision of every run (default: off for DSH's small CNN, bf16 for GreedyHash)")
    p.add_argument("--dsh-from-scratch", action="store_true",
                   help="train DSH's 24/36/48 bits from scratch instead of from the 12-bit model")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    p.set_defaults(func=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    out = Path(args.out or ("runs/reproduce-cifar10-smoke" if args.smoke else "runs/reproduce-cifar10"))
    limit = args.time_limit if args.time_limit is not None else (300.0 if args.smoke else 600.0)
    if limit <= 0:
        raise PackError(f"--time-limit {args.time_limit}: must be > 0 seconds")
    shared = os.environ.get("BITRIEVE_SHARED_DATA") or "../shared/data"
    cifar = Path(args.cifar) if args.cifar else Path(shared) / "cifar10-jpg"
    table = reproduce_cifar10(out, Path(args.configs), cifar,
                              Path(args.stores) if args.stores else None, args.smoke, limit,
                              args.dsh_from_scratch, args.amp, progress=not args.no_progress)
    print(table, end="")
    return 0
