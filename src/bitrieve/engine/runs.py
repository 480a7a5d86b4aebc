"""The run directory: what is written there and how a finished run is recognised.

``config.yaml`` (resolved config), ``card.json`` (dataset card; its sha256 is over the file's exact bytes),
``env.json`` (versions, device, seed, git commit), ``checkpoint.safetensors`` + ``state.json``, ``events/``,
``log.txt``, ``results.json``. Every file is written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bitrieve.atomic import check_replaceable, check_writable, exclusive_lock, hidden_stem, write_bytes_atomic, \
    write_json_atomic, write_text_atomic
from bitrieve.checkpoint import CHECKPOINT, STATE, load_checkpoint
from bitrieve.config import ConfigError
from bitrieve.engine import distributed as ddp
from bitrieve.data.types import card_bytes, card_sha256  # noqa: F401  (re-exported: the engine writes card.json)
from bitrieve.record import RECORD_FILE, RunRecord, record_from_dict



def data_name(spec: str) -> str:
    """'wiki' -> 'wiki'; a store path -> its directory name."""
    return spec if spec == "wiki" else Path(spec).resolve().name


def default_run_dir(method: str, data: str, bits: int, seed: int, root: str | Path = "runs", suffix: str = "") -> Path:
    """``runs/<method>-<data>[-<suffix>]/b<bits>-s<seed>`` (``suffix``: see `override_suffix`)."""
    return Path(root) / (f"{method}-{data_name(data)}" + (f"-{suffix}" if suffix else "")) / f"b{bits}-s{seed}"


def locked_run_dir(train: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``train(cfg, run_dir, ...)``: check that ``run_dir`` can be written, then hold an exclusive lock on it
    for the whole run (lock file ``.NAME.lock`` beside it, holding the pid), before any data is read. A second
    process training into the same directory fails at once naming the holder's pid, instead of mixing one config's
    results with the other's config.yaml. Under torchrun only rank 0 locks (the ranks share the directory)."""

    @functools.wraps(train)
    def wrapper(cfg: Any, run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        if int(os.environ.get("RANK", "0")) != 0:
            return train(cfg, run_dir, *args, **kwargs)
        run_dir = Path(run_dir)
        check_writable(run_dir, "run directory")
        with exclusive_lock(run_dir, "run directory"):
            return train(cfg, run_dir, *args, **kwargs)

    return wrapper


def config_tag(config_path: str | Path, method: str, data: str) -> str:
    """What distinguishes a config file from the plain one for its method and data: '' for
    ``configs/agch_wiki.yaml`` (method agch, data wiki) and for a store-named variant such as
    ``vsepp_coco_mini.yaml`` on ``stores/coco-mini-effnet``; 'demo' for ``agch_wiki_demo.yaml``; the whole file name
    for anything else (``my_experiment.yaml`` -> 'my_experiment'). Keeps two config files apart by default."""
    norm = lambda s: str(s).replace("_", "-").lower()  # noqa: E731
    stem, group = norm(Path(config_path).stem), norm(f"{method}-{data_name(data)}")
    if stem == group or group.startswith(stem + "-"):
        return ""
    if stem.startswith(group + "-"):
        return Path(config_path).stem[len(group) + 1:]
    return Path(config_path).stem


def train_run_dir(config_path: str | Path, cfg, plain, root: str | Path = "runs") -> Path:
    """The run directory ``bitrieve train CONFIG`` uses without ``--out``:
    ``<root>/<method>-<data>[-<config tag>][-<override hash>]/b<bits>-s<seed>`` (see `config_tag`,
    `override_suffix`; ``plain`` is the config file with only bits and seed applied)."""
    suffix = "-".join(x for x in (config_tag(config_path, cfg.method, cfg.data), override_suffix(cfg, plain)) if x)
    return default_run_dir(cfg.method, cfg.data, cfg.bits, cfg.seed, root=root, suffix=suffix)


def override_suffix(cfg, plain) -> str:
    """'' when ``cfg`` resolves to the same config as ``plain`` (the config file with only bits/seed applied), else
    the first 8 hex digits of the sha256 of ``cfg``'s resolved config without bits and seed: every ``--set`` (or
    --device/--amp/--compile) combination gets its own run directory, shared by its bit lengths and seeds."""
    if cfg.sha256() == plain.sha256():
        return ""
    d = {k: v for k, v in cfg.identity().items() if k not in ("bits", "seed")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


# what the engine writes into a run directory; --overwrite replaces a directory that holds nothing else
RUN_DIR_ENTRIES = {"config.yaml", "card.json", "env.json", "checkpoint.safetensors", "best.safetensors",
                   "state.json", "log.txt", "summary.txt", "events", RECORD_FILE, "wandb"}


def is_run_dir(path: str | Path) -> bool:
    """True for a directory the engine wrote: config.yaml and nothing but the engine's files (so a folder that also
    holds someone's own files is never deleted by ``--overwrite``)."""
    names = {p.name for p in Path(path).iterdir()}
    return "config.yaml" in names and all(n in RUN_DIR_ENTRIES or n.startswith(".") and n.endswith(".tmp")
                                          for n in names)


def finished_run(run_dir: str | Path, sha: str, resume: bool, overwrite: bool) -> RunRecord | None:
    """The stored run record to keep (the same config, finished: the run is skipped), or None to train.

    Finished results are replaced only with ``overwrite``: a finished run of another config, or ``resume=False``
    (``--no-resume``) on a finished run, is refused with an error saying so. Nothing is deleted here.
    """
    run_dir = Path(run_dir)
    if overwrite:
        if run_dir.exists():
            check_replaceable(run_dir, is_run_dir, "bitrieve run directory")
        return None
    done = stored_record(run_dir)
    if done is None:
        return None
    if done.config_sha256 != sha:
        raise ConfigError(f"{run_dir}: holds finished results of a different config (config_sha256 "
                          f"{done.config_sha256[:12]} != {sha[:12]}); add --overwrite to replace them, or "
                          "choose another run directory (--out)")
    if not resume:
        raise ConfigError(f"{run_dir}: holds finished results of this config; --no-resume does not replace finished "
                          "results: add --overwrite to train it again from scratch")
    return done


def clear_run_dir(run_dir: str | Path) -> None:
    """Remove a run directory that `finished_run` allowed to be overwritten (moved aside first, then deleted, so an
    interruption never leaves half of the old run in place)."""
    run_dir = Path(run_dir)
    check_replaceable(run_dir, is_run_dir, "bitrieve run directory")
    if run_dir.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{hidden_stem(run_dir.name)}.old-", dir=run_dir.parent))
        os.replace(run_dir, aside / run_dir.name)
        shutil.rmtree(aside, ignore_errors=True)


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, or None (not a git checkout, no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def portable_argv(argv: list[str], cwd: str | Path | None = None) -> list[str]:
    """The command line as recorded in a run: no absolute machine path (a record travels between machines and into
    pages): the program as ``bitrieve`` / its file name, a path under the working directory (``cwd``, default the
    current one) relative to it, any other absolute path as ``.../<last two parts>``."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    out = []
    for i, a in enumerate(argv):
        p = Path(a)
        if i == 0:
            out.append("bitrieve" if p.name in ("__main__.py", "bitrieve") else p.name)
        elif p.is_absolute():
            try:
                out.append(str(p.relative_to(cwd)))
            except ValueError:
                out.append(str(Path("...", *p.parts[-2:])))
        else:
            out.append(a)
    return out


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "seed": seed,
        "git_commit": git_commit(),
        "argv": portable_argv(sys.argv),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_run_files(run_dir: Path, config_yaml: str, card: dict[str, Any], env: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", config_yaml)
    write_bytes_atomic(run_dir / "card.json", card_bytes(card))
    write_json_atomic(run_dir / "env.json", env)


def stored_record(run_dir: str | Path) -> RunRecord | None:
    """The run's record, or None when it has none or its file is not JSON (atomic writes make that unlikely: it is
    treated as unfinished). A JSON file that is not a valid record raises `RecordError` naming the key."""
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record_from_dict(data, str(path))


STORES_ENV = "BITRIEVE_STORES"  # a folder holding stores, searched for a run's data wherever the command runs


def resolve_run_data(run_dir: str | Path, spec: str) -> str:
    """Where a run's data is, from any working directory: ``spec`` (config.yaml's ``data``) as given, when it exists
    from here; else the same relative path under each parent of the run directory (a project's ``runs/...`` beside
    its ``stores/``); else under ``$BITRIEVE_STORES`` (as given, then by its last name). A store found by searching
    counts only when its card is the one the run was trained on (the run's card.json, by sha256), so a different
    store of the same name is never picked up."""
    from bitrieve.data.types import DataError

    given = Path(spec)
    if spec == "wiki" or given.is_dir():  # as given, from here: as before (the store may have been rebuilt)
        return spec
    run_card = Path(run_dir) / "card.json"
    candidates = [] if given.is_absolute() else [p / given for p in Path(run_dir).resolve().parents]
    roots = [Path(r) for r in os.environ.get(STORES_ENV, "").split(os.pathsep) if r]
    candidates += [c for r in roots for c in ((r / given.name,) if given.is_absolute() else (r / given, r / given.name))]
    other = []
    for c in candidates:
        if (c / "card.json").is_file():
            if _same_card(run_dir, c):
                return str(c)
            other.append(str(c))
    looked = "the current directory, the run directory's parents" + (f", ${STORES_ENV}" if roots else "")
    seen = f"; {', '.join(other)} hold(s) a store of another card (not this run's data)" if other else ""
    raise DataError(f"{run_dir}: its data '{spec}' was not found (looked in {looked}){seen}; run the command "
                    f"from the directory the run was trained in, or set {STORES_ENV} to the folder that holds the "
                    f"store{'' if run_card.is_file() else ' (the run has no card.json to check a store against)'}")


def _same_card(run_dir: str | Path, store: Path) -> bool:
    """The store's card is the run's (card.json sha256); True when the run keeps no card to compare with."""
    mine = Path(run_dir) / "card.json"
    theirs = store / "card.json"
    if not mine.is_file():
        return True
    if not theirs.is_file():
        return False
    try:
        return card_sha256(json.loads(mine.read_text())) == card_sha256(json.loads(theirs.read_text()))
    except (OSError, ValueError):
        return False


def load_run_config(run_dir: str | Path):
    """A run's config.yaml with ``data`` pointing at where the run's store is from here (:func:`resolve_run_data`)."""
    from bitrieve.config import load_config

    cfg = load_config(Path(run_dir) / "config.yaml")
    where = resolve_run_data(run_dir, cfg.data)
    return cfg if where == cfg.data else cfg.model_copy(update={"data": where})


def prepare_run_dir(run_dir: Path, sha: str, resume: bool, overwrite: bool, info: ddp.DistInfo):
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
