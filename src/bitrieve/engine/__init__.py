"""The one training engine (docs/engine.md): ``train_run(cfg, run_dir)``, ``evaluate_run(run_dir)`` and
``load_run(run_dir) -> (cfg, method)``.

The trainer (and torch) is imported on first use, so that ``bitrieve --help`` stays fast.
"""

from __future__ import annotations

__all__ = ["train_run", "evaluate_run", "load_run", "format_metrics", "resolve_device", "WallTimeExceeded"]


def __getattr__(name: str):
    if name in __all__:
        from bitrieve.engine import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'bitrieve.engine' has no attribute '{name}'")
