"""The one training engine (docs/engine.md): ``train_run(cfg, run_dir)``, ``evaluate_run(run_dir)`` and
``load_run(run_dir) -> (cfg, method)``.

The engine's modules (and torch) are imported on first use, so that ``bitrieve --help`` stays fast.
"""

from __future__ import annotations

__all__ = ["train_run", "WallTimeExceeded", "evaluate_run", "format_metrics", "load_run"]


def __getattr__(name: str):
    if name in ("train_run", "WallTimeExceeded"):
        from bitrieve.engine import trainer as home
    elif name in ("evaluate_run", "format_metrics"):
        from bitrieve.engine import run_evaluation as home
    elif name == "load_run":
        from bitrieve.engine import loading as home
    else:
        raise AttributeError(f"module 'bitrieve.engine' has no attribute '{name}'")
    return getattr(home, name)
