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
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bitrieve.atomic import check_writable, exclusive_lock
from bitrieve.engine.checkpoint import atomic_write_bytes, atomic_write_json, atomic_write_text

RESULTS = "results.json"


def data_name(spec: str) -> str:
    """'wiki' -> 'wiki'; a store path -> its directory name."""
    return spec if spec == "wiki" else Path(spec).resolve().name


def default_run_dir(method: str, data: str, bits: int, seed: int, root: str | Path = "runs") -> Path:
    return Path(root) / f"{method}-{data_name(data)}" / f"b{bits}-s{seed}"


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


def card_bytes(card: dict[str, Any]) -> bytes:
    return (json.dumps(card, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def card_sha256(card: dict[str, Any]) -> str:
    """sha256 of ``card.json`` exactly as written (``sha256sum card.json`` gives the same)."""
    return hashlib.sha256(card_bytes(card)).hexdigest()


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, or None (not a git checkout, no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "seed": seed,
        "git_commit": git_commit(),
        "argv": sys.argv,
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_run_files(run_dir: Path, config_yaml: str, card: dict[str, Any], env: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config_yaml)
    atomic_write_bytes(run_dir / "card.json", card_bytes(card))
    atomic_write_json(run_dir / "env.json", env)


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # unreadable: treated as unfinished (atomic writes make this unlikely)


def write_results(run_dir: str | Path, results: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / RESULTS, results)
