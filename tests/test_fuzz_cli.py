"""Property-based fuzzing of the command line, in-process (issue 22): random option values and malformed config
files must end with an exit status in {0, 1, 2, 130, 141}, at most one error line on stderr and no traceback (no
``--debug``), and no file outside the command's target changed. A bounded number of examples, so it runs in CI.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitrieve.cli import main

OK_EXITS = {0, 1, 2, 130, 141}
SETTINGS = dict(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOY = {"method": "toy_linear", "bits": 8, "seed": 0, "device": "cpu", "tracking": "none",
       "params": {"epochs": 1, "batch_size": 64, "max_rows": 256}, "eval": {"query_limit": 50, "ks": [10]}}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check(capsys, argv) -> int:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert rc in OK_EXITS, (argv, rc, captured.err[-2000:])
    assert "Traceback" not in captured.err + captured.out, (argv, captured.err[-2000:])
    errors = [ln for ln in captured.err.splitlines() if ": error:" in ln]
    assert len(errors) <= 1, (argv, errors)
    if rc != 0:
        assert len(errors) == 1, (argv, rc, captured.err[-2000:])
    return rc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished toy run and an exact index of it (the fixed inputs the fuzzed commands read)."""
    root = tmp_path_factory.mktemp("fuzz")
    config = root / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY))
    assert main(["train", str(config), "--out", str(root / "run"), "--no-progress"]) == 0
    assert main(["index", "build", "--run", str(root / "run"), "--modality", "image", "--out",
                 str(root / "idx")]) == 0
    return root


numbers = st.one_of(st.integers(-10, 10), st.integers(-2**40, 2**40), st.sampled_from(["", "x", "1.5", "nan", "-0",
                                                                                         "1e9", "true", "０"]))


@settings(**SETTINGS)
@given(k=numbers, radius=st.one_of(st.none(), numbers), nprobe=st.one_of(st.none(), numbers),
       ids=st.one_of(st.just("0"), st.text(string.printable, max_size=8)))
def test_search_with_random_options(built, capsys, k, radius, nprobe, ids):
    before = _tree(built)
    argv = ["search", built / "idx", "--run", built / "run", "--ids", ids, "-k", k, "--no-labels"]
    argv += [] if radius is None else ["--radius", radius]
    argv += [] if nprobe is None else ["--nprobe", nprobe]
    _check(capsys, argv)
    assert _tree(built) == before  # search changes nothing on disk


@settings(**SETTINGS)
@given(digits=numbers, metric=st.text(string.ascii_letters + "@_-", max_size=10))
def test_report_with_random_options(built, tmp_path_factory, capsys, digits, metric):
    before = _tree(built)
    out = tmp_path_factory.mktemp("report") / "t.md"
    _check(capsys, ["report", built / "run", "--digits", digits, "--metric", metric, "--out", out])
    assert _tree(built) == before


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
keys = st.sampled_from(["bits", "seed", "params.epochs", "params.batch_size", "params.lr_image", "params.quantization",
                        "params.optimizer", "params.milestones", "eval.ks", "eval.tasks", "eval.query_limit",
                        "eval.tie", "device", "amp", "data", "method", "params.nonsense", "selection.size"])


@settings(**SETTINGS)
@given(changes=st.dictionaries(keys, values, min_size=1, max_size=3), garbage=st.one_of(st.none(), st.text(max_size=40)))
def test_train_with_malformed_configs(tmp_path_factory, capsys, changes, garbage):
    root = tmp_path_factory.mktemp("cfg")
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in TOY.items()}
    cfg["params"] = {**TOY["params"], "epochs": 1, "max_rows": 128}
    for key, value in changes.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else node
        node[last] = value
    text = yaml.safe_dump(cfg, allow_unicode=True) if garbage is None else garbage
    config = root / "c.yaml"
    config.write_text(text, encoding="utf-8")
    before = _tree(root)
    _check(capsys, ["train", config, "--out", root / "run", "--no-progress"])
    after = {k: v for k, v in _tree(root).items() if not k.startswith("run/")}
    assert after == before  # only the run directory (the target) may have been written
