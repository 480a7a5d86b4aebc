"""How far each parameter group's weights moved over training: a check that every part of a model really trained.

A branch whose weights stay where they were initialised (a GCN behind a tiny loss weight, an image encoder at a
fine-tuning learning rate) produces near-constant or random outputs without any error. For every parameter group the
method names (``param_groups()``), with w₀ the initial and w the final weights of the group (all its tensors as one
vector):

- ``relative_change``    = ‖w − w₀‖ / ‖w₀‖;
- ``norm_ratio``         = ‖w‖ / ‖w₀‖;
- ``beyond_decay``       = ‖(w − w₀) − proj_{w₀}(w − w₀)‖ / ‖w₀‖: the movement that is not a rescaling of w₀. Weight
  decay alone (and any gradient that only shrinks or grows the weights) moves w along w₀, so this is the part the
  loss's gradients put into the weights' direction. A group is flagged when it is below ``MIN_MOVEMENT`` (1%).

The initial weights are taken after the method is built and prepared; they depend only on the run seed (engine
seeding), so a resumed run rebuilds exactly the same w₀ before loading its checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch

MIN_MOVEMENT = 0.01  # flag a group whose weights moved less than 1% of their initial norm beyond a rescaling


def _group_params(method) -> dict[str, list[torch.nn.Parameter]]:
    groups = {}
    for name, g in method.param_groups().items():
        params = [p for p in g["params"] if p.requires_grad]
        if params:
            groups[name] = params
    return groups


class ParameterMovement:
    """Snapshot of every parameter group at construction; :meth:`report` compares the current weights with it."""

    def __init__(self, method) -> None:
        self.initial = {name: [p.detach().float().cpu().clone() for p in params]
                        for name, params in _group_params(method).items()}

    def report(self, method, threshold: float = MIN_MOVEMENT) -> dict[str, Any]:
        """``{"threshold", "groups": {name: {relative_change, norm_ratio, beyond_decay, n_params}}, "warnings"}``."""
        groups: dict[str, dict[str, float]] = {}
        warnings = []
        for name, params in _group_params(method).items():
            if name not in self.initial or len(self.initial[name]) != len(params):
                continue
            w0 = torch.cat([t.reshape(-1).double() for t in self.initial[name]])
            w = torch.cat([p.detach().reshape(-1).double().cpu() for p in params])
            delta = w - w0
            n0 = float(w0.norm())
            if n0 == 0.0:  # all-zero initialisation (e.g. biases only): relative numbers are undefined
                moved = float(delta.norm())
                groups[name] = {"relative_change": None, "norm_ratio": None, "beyond_decay": None,
                                "absolute_change": moved, "n_params": int(w.numel())}
                if moved == 0.0:
                    warnings.append(f"NOT TRAINING (parameter group '{name}'): zero-initialised and unchanged")
                continue
            else:
                along = float(delta @ w0) / n0
                orth = math.sqrt(max(float(delta @ delta) - along * along, 0.0))
                groups[name] = {"relative_change": float(delta.norm()) / n0, "norm_ratio": float(w.norm()) / n0,
                                "beyond_decay": orth / n0, "n_params": int(w.numel())}
            g = groups[name]
            if g["beyond_decay"] < threshold:
                warnings.append(f"NOT TRAINING (parameter group '{name}'): its weights moved {g['beyond_decay']:.2%} "
                                f"of their initial norm beyond a rescaling (< {threshold:.0%}; total change "
                                f"{g['relative_change']:.2%}, norm ratio {g['norm_ratio']:.3f})")
        return {"threshold": threshold, "groups": groups, "warnings": warnings}
