"""Every stage (and every step of a stage) of every registered method optimises exactly the terms it declares.

A stage's ``loss(batch)`` returns ``"loss"`` (what is back-propagated) and the named terms it logs. The check is
independent of each method's weights: the gradient of ``"loss"`` with respect to all parameters must lie in the span
of the gradients of the declared terms (least squares; residual below 1e-4 of the gradient: float32 rounding), and it
must reach no parameter outside the groups the stage (or step) updates. A loss with an undeclared term fails the first
check; a stage whose loss pulls on parameters it does not update fails the second - as ``agch_fusion_balanced``'s
fusion-only stage did before it honoured ``with_hash`` (its loss reached the hash heads, which that stage does not
update; checked by running this file against the pre-fix method).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bitrieve.data.types import Split
from bitrieve.methods import REGISTRY, get_method
from bitrieve.methods.base import DataInfo
from small_methods import small_settings

DIMS = {"image": 12, "text": 6}
N_TRAIN, N_LABELS, BATCH = 40, 3, 8
SMALL = small_settings(BATCH)  # tests/small_methods.py


def _info(modalities):
    return DataInfo(feature_dims={m: DIMS[m] for m in modalities}, input_shapes={m: (DIMS[m],) for m in modalities},
                    num_labels=N_LABELS, num_train=N_TRAIN)


def _train_split(modalities):
    rng = np.random.default_rng(0)
    inputs = {m: np.abs(rng.normal(size=(N_TRAIN, DIMS[m]))).astype(np.float32) for m in modalities}
    labels = np.eye(N_LABELS, dtype=np.uint8)[rng.integers(0, N_LABELS, N_TRAIN)]
    return Split(inputs, labels, np.arange(N_TRAIN))


def _batch(train):
    rows = torch.arange(BATCH)
    b = {m: torch.as_tensor(x[:BATCH]) for m, x in train.inputs.items()}
    b["index"] = rows
    b["label"] = torch.as_tensor(train.labels[:BATCH]).float()
    return b


def _build(name):
    cls = get_method(name)
    torch.manual_seed(0)
    modalities = cls.modalities
    m = cls(cls.Params(**SMALL.get(name, {})), 16, _info(modalities))
    train = _train_split(modalities)
    m.prepare(train)
    return m.train(), train


def _flat_grad(value, params):
    if not value.requires_grad:
        return torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
                     ).double()


def _cases():
    out = []
    for name in sorted(REGISTRY):
        method, _ = _build(name)
        for si, stage in enumerate(method.stages()):
            steps = [(s.name, tuple(s.groups)) for s in stage.steps] or [(None, tuple(stage.groups))]
            out += [pytest.param(name, si, step, id=f"{name}-{stage.name}" + (f"-{step}" if step else ""))
                    for step, _ in steps]
    return out


@pytest.mark.parametrize("name,stage_index,step", _cases())
def test_stage_optimises_exactly_its_declared_terms(name, stage_index, step):
    method, train = _build(name)
    stage = method.stages()[stage_index]
    batch = _batch(train)
    torch.manual_seed(1)  # one forward pass: dropout / mirror draws are shared by the loss and its terms
    if step is None:
        loss_fn, groups = stage.loss, stage.groups
    else:
        for s in stage.steps:  # the steps before this one run first on the same batch, as in the engine
            if s.name == step:
                loss_fn, groups = s.loss, s.groups
                break
            s.loss(batch)
    out = loss_fn(batch)
    params = [p for p in method.parameters() if p.requires_grad]
    g_loss = _flat_grad(out["loss"], params)
    assert g_loss.norm() > 0, f"{name}: the loss trains nothing"
    # a loss returned alone is its own single declared term
    terms = {k: v for k, v in out.items() if k != "loss" and v.requires_grad} or {"loss": out["loss"]}
    basis = torch.stack([_flat_grad(v, params) for v in terms.values()], dim=1)
    coef = torch.linalg.lstsq(basis, g_loss.unsqueeze(1), driver="gelsd").solution
    residual = (basis @ coef).squeeze(1) - g_loss
    assert residual.norm() <= 1e-4 * g_loss.norm(), \
        f"{name}: the loss has a gradient no declared term {sorted(terms)} explains"
    # ... and it pulls only on the parameters of the groups this stage / step updates
    groups_of = method.param_groups()
    updated = {id(p) for g in groups for p in groups_of[g]["params"]}
    offset = 0
    for (pname, p) in [(n, p) for n, p in method.named_parameters() if p.requires_grad]:
        n = p.numel()
        if id(p) not in updated:
            assert g_loss[offset:offset + n].abs().max() == 0, f"{name}: loss reaches {pname}, not in {groups}"
        offset += n


def test_the_check_catches_an_undeclared_term():
    """The fusion-only stage of agch_fusion_balanced, with the pre-fix loss (all terms, only the embedding term
    declared), is refused by the span check above."""
    method, train = _build("agch_fusion_balanced")
    out = method._loss(_batch(train), with_hash=True)
    params = [p for p in method.parameters() if p.requires_grad]
    g_loss = _flat_grad(out["loss"], params)
    basis = _flat_grad(out["contrastive_embedding"], params).unsqueeze(1)
    coef = torch.linalg.lstsq(basis, g_loss.unsqueeze(1), driver="gelsd").solution
    assert ((basis @ coef).squeeze(1) - g_loss).norm() > 1e-3 * g_loss.norm()
