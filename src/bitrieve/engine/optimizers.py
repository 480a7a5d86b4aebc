"""One optimizer per stage and its learning-rate schedule (docs/engine.md "Stages"): a parameter group per name in
``stage.groups`` at the learning rate ``method.param_groups()`` gives it, and the MultiStepLR-style schedule."""

from __future__ import annotations

import torch

from bitrieve.methods.base import HashMethod, Stage


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
