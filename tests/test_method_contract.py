"""The golden checks every registered method passes - built in, or a user's module - with nothing to edit here: the
cases come from the registry and each method's own ``smoke_params`` (tests/small_methods.py).

Field notes (../shared/NOTES.md): a published GreedyHash port never trained its hash layer, and a bit-length option
had no effect. So, for every method on a tiny random problem: every trainable parameter receives a gradient from
the stages' losses and belongs to a parameter group a stage updates; the code length sets the width of every
modality's output; a checkpoint's tensors load back into a fresh instance and give the same codes.
Method-specific versions (other backbones, switches) stay in each method's test file."""

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
SETTINGS = small_settings(BATCH)
NAMES = list(REGISTRY)


def _train_split(modalities) -> Split:
    rng = np.random.default_rng(0)
    inputs = {m: np.abs(rng.normal(size=(N_TRAIN, DIMS[m]))).astype(np.float32) for m in modalities}
    labels = np.eye(N_LABELS, dtype=np.uint8)[rng.integers(0, N_LABELS, N_TRAIN)]
    return Split(inputs, labels, np.arange(N_TRAIN))


def _build(name: str, bits: int = 16, **over):
    cls = get_method(name)
    torch.manual_seed(0)
    info = DataInfo(feature_dims={m: DIMS[m] for m in cls.modalities},
                    input_shapes={m: (DIMS[m],) for m in cls.modalities}, num_labels=N_LABELS, num_train=N_TRAIN)
    method = cls(cls.Params(**{**SETTINGS[name], **over}), bits, info)
    train = _train_split(cls.modalities)
    method.prepare(train)
    return method, train


def _batch(method, train) -> dict[str, torch.Tensor]:
    batch = {m: torch.as_tensor(train.inputs[m][:BATCH]) for m in method.modalities}
    batch["index"] = torch.arange(BATCH)
    if method.supervised:
        batch["label"] = torch.as_tensor(train.labels[:BATCH]).float()
    return batch


def test_the_registry_holds_every_builtin_and_the_tests_method():
    assert {"agch", "cca_itq", "djsrh", "dsh", "greedyhash", "vsepp", "toy_linear"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_receives_a_gradient_and_is_updated(name):
    method, train = _build(name)
    method.train()
    trainable = {n for n, p in method.named_parameters() if p.requires_grad}
    stages = method.stages()
    if not stages:  # a closed-form method (CCA-ITQ) trains nothing by gradient
        assert not trainable, f"{name}: parameters {sorted(trainable)} but no stage trains them"
        return
    batch = _batch(method, train)
    reached, updated = set(), set()
    groups = method.param_groups()
    for stage in stages:
        updated |= {id(p) for g in stage.groups for p in groups[g]["params"]}
        for loss in [stage.loss] if stage.loss is not None else [s.loss for s in stage.steps]:
            method.zero_grad(set_to_none=True)
            out = loss(batch)  # the steps of a stage run in order on one batch, as in the engine
            assert torch.isfinite(out["loss"]), f"{name}: loss {out['loss']}"
            if out["loss"].requires_grad:
                out["loss"].backward()
            reached |= {n for n, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trainable - reached == set(), f"{name}: no gradient reaches {sorted(trainable - reached)}"
    not_updated = {n for n, p in method.named_parameters() if p.requires_grad and id(p) not in updated}
    assert not not_updated, f"{name}: {sorted(not_updated)} are in no group a stage updates"


@pytest.mark.parametrize("name", NAMES)
def test_the_code_length_sets_the_output_width(name):
    widths = []
    for bits in (8, 20):
        method, train = _build(name, bits)
        method.eval()
        for modality in method.modalities:
            with torch.no_grad():
                out = method.encode(modality, torch.as_tensor(train.inputs[modality][:3]))
            assert out.shape == (3, method.code_width), f"{name} {modality}: {tuple(out.shape)}"
        widths.append(method.code_width)
    if method.output == "hash":
        assert widths == [8, 20]


# switches under which prepare fits what encode reads, beyond the smoke settings (which already cover CCA-ITQ's
# kernel fit and the fusion family's fill; DSH's pixel mean is checked to be in the state dict in tests/test_dsh.py)
PREPARE_SWITCHES = [("dgcpn", {"input_norm": "standardize"}), ("djsrh", {"input_norm": "standardize"}),
                    ("agch", {"standardize_inputs": "both", "neutral_point": "quantile"})]


@pytest.mark.parametrize("name, over", [(n, {}) for n in NAMES] + PREPARE_SWITCHES)
def test_a_saved_state_loads_into_a_fresh_instance_and_gives_the_same_codes(name, over):
    """The fresh instance is not prepared: what ``load_run`` does for a method with ``prepare_on_load = False``
    (HashMethod), whose claim is that every fitted value encode reads is in the state dict."""
    trained, train = _build(name, **over)
    with torch.no_grad():  # move every weight, so a load that kept the fresh weights would show
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    cls = get_method(name)
    torch.manual_seed(123)
    fresh = cls(cls.Params(**{**SETTINGS[name], **over}), 16, trained.info)
    fresh.load_state_dict(state)
    trained.eval(), fresh.eval()
    for modality in cls.modalities:
        x = torch.as_tensor(train.inputs[modality][:5])
        with torch.no_grad():
            torch.testing.assert_close(fresh.encode(modality, x), trained.encode(modality, x))


def test_the_engine_names_no_method_and_reads_no_methods_params():
    """Hooks, not names (issue 23): nothing under engine/ mentions a registered method's name as a string or reads
    ``.params`` of a method; what differs by method is a method attribute (extra_evaluations, hamming_metrics)."""
    import ast
    from pathlib import Path

    import bitrieve.engine

    names = set(NAMES) - {"toy_linear"}
    for path in Path(bitrieve.engine.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(
            n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value not in names, f"{path.name}:{node.lineno} names the method {node.value!r}"
            reads_params = (isinstance(node, ast.Attribute) and node.attr == "params") or (
                isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) > 1
                and getattr(node.args[1], "value", None) == "params")
            assert not reads_params, f"{path.name}:{node.lineno} reads a method's params"


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_extra_evaluation_is_a_hook_with_a_description(name):
    from bitrieve.methods.base import ExtraEvaluation

    for key, spec in get_method(name).extra_evaluations.items():
        assert isinstance(spec, ExtraEvaluation) and callable(spec.run) and spec.description, key


def test_the_walkthrough_command_trains_the_method_from_its_own_module(tmp_path):
    """docs/compose.md's train command, as written (taken from the page), shortened to 3 epochs: a method that lives
    outside the package trains through the CLI from its module, with no collapse warning (the default suite runs
    this; the docs test runs the page's commands only in the slow suite)."""
    import json
    import os
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "compose.md").read_text()
    line = next(x for x in page.splitlines() if x.startswith("BITRIEVE_METHOD_MODULES=dhn "))
    words = shlex.split(line, comments=True)
    env = {k: v for k, v in os.environ.items() if k not in ("BITRIEVE_METHOD_MODULES", "PYTHONPATH")}
    while re.match(r"^[A-Z_]+=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[:3] == ["python", "-m", "bitrieve"]
    out_at = words.index("--out")
    words[out_at + 1] = str(tmp_path / "run")
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run([sys.executable, *words[1:], "--set", "params.epochs=3", "--no-progress"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "COLLAPSE" not in p.stdout + p.stderr and "NOT TRAINING" not in p.stdout + p.stderr
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]["i2i"]
    assert 0 < metrics["map@all"] <= 1
