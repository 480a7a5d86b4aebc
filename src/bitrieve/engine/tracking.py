"""Run logging: ``log.txt`` (always), TensorBoard scalars under ``events/`` or W&B offline (optional).

TensorBoard is used when ``cfg.tracking == "tensorboard"`` and the package is installed (extra ``track``); W&B when
``cfg.tracking == "wandb"`` and ``wandb`` is installed, always in offline mode unless ``WANDB_MODE`` says otherwise
(no network at run time by default). A missing backend is said once in the log, never an error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


class Tracker:
    def __init__(self, run_dir: str | Path, backend: str = "none", config: dict[str, Any] | None = None,
                 echo: bool = False, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.echo = echo
        self.enabled = enabled  # False on non-zero DDP ranks: they write nothing
        self._tb = None
        self._wandb = None
        self._log = open(self.run_dir / "log.txt", "a", encoding="utf-8") if enabled else None
        if not enabled:
            return
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.run_dir / "events"))
            except ImportError:
                self.log("tracking: tensorboard is not installed (pip install 'bitrieve[track]'); log.txt only")
        elif backend == "wandb":
            try:
                import wandb

                os.environ.setdefault("WANDB_MODE", "offline")
                self._wandb = wandb.init(dir=str(self.run_dir), config=config or {}, reinit=True)
            except ImportError:
                self.log("tracking: wandb is not installed (pip install 'bitrieve[wandb]'); log.txt only")

    def log(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        self._log.write(line + "\n")
        self._log.flush()
        if self.echo:
            print(message, flush=True)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(dict(values), step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._log is not None:
            self._log.close()
