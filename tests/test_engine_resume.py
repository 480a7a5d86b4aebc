"""A run killed with SIGKILL mid-training and restarted with the same command ends with the SAME results.json
metrics (bit for bit, CPU) as an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bitrieve.checkpoint import load_checkpoint

CONFIG = {
    "method": "toy_linear", "bits": 8, "seed": 3, "device": "cpu", "tracking": "none",
    # 3 epochs of 16 small Adam steps, 10 ms each: killed inside epoch 2 or 3 on any machine, short overall
    "params": {"epochs": 3, "batch_size": 16, "max_rows": 256, "milestones": [2], "sleep_per_batch": 0.01},
    "eval": {"query_limit": 80, "ks": [20]},
}


def _cmd(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bitrieve", "train", str(config), "--out", str(out), "--no-progress"]


def _env() -> dict[str, str]:
    # same thread count in every process: float reductions then add up in the same order
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    full, killed = tmp_path / "full", tmp_path / "killed"
    # the reference run and the run to be killed go side by side (saves wall time)
    ref = subprocess.Popen(_cmd(config, full), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim = subprocess.Popen(_cmd(config, killed), env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (killed / "checkpoint.safetensors").exists():
        assert victim.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 60 s"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed / "results.json").exists(), "killed too late: the run had already finished"
    epochs_done = load_checkpoint(killed)[2]["epoch"]  # the checkpoint's own state (state.json is only a copy)
    assert 1 <= epochs_done < CONFIG["params"]["epochs"]

    out, _ = ref.communicate(timeout=120)
    assert ref.returncode == 0, out.decode()
    resumed = subprocess.run(_cmd(config, killed), env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from checkpoint.safetensors" in (killed / "log.txt").read_text()

    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert b["metrics"] == a["metrics"]  # exact equality, not approximate
    assert b["history"] == a["history"]
    assert b["diagnostics"] == a["diagnostics"]
    assert b["config_sha256"] == a["config_sha256"]
    # and the table was printed
    assert "map@all" in out.decode() and "i2t" in out.decode()


# --- in-process: an interruption inside the second stage of a two-stage method --------------------------------------
from toy_method import ToyLinear  # noqa: E402
from bitrieve.methods.base import Stage  # noqa: E402


class Interrupted(Exception):
    pass


class TwoStageToy(ToyLinear):
    """Stage "pre" trains the image head (Adam), stage "main" both heads (SGD + momentum, step schedule)."""

    fail_at: tuple[str, int, int] | None = None  # (stage, epoch, batch) where the loss raises
    calls: dict = {}

    def _counted(self, name):
        def loss(batch):
            n = TwoStageToy.calls[name] = TwoStageToy.calls.get(name, 0) + 1
            if TwoStageToy.fail_at is not None and TwoStageToy.fail_at[0] == name and n == TwoStageToy.fail_at[2]:
                raise Interrupted(name)
            return self.loss(batch)
        return loss

    def stages(self):
        return [Stage("pre", 2, self._counted("pre"), ["image"], batch_size=64, optimizer="adam", max_rows=256),
                Stage("main", 3, self._counted("main"), ["image", "text"], batch_size=64, optimizer="sgd",
                      optimizer_kwargs={"momentum": 0.9}, schedule_milestones=(1,), max_rows=256)]


def test_interrupted_second_stage_resumes_exactly(tmp_path, monkeypatch):
    import pytest
    import torch

    from bitrieve.config import parse_config
    from bitrieve.engine import train_run
    from bitrieve.methods import REGISTRY

    monkeypatch.setitem(REGISTRY, "two_stage_toy", TwoStageToy)
    cfg = parse_config({"method": "two_stage_toy", "bits": 8, "seed": 1, "tracking": "none",
                        "eval": {"query_limit": 50, "ks": [10], "every": 2}})
    TwoStageToy.fail_at, TwoStageToy.calls = None, {}
    full = train_run(cfg, tmp_path / "full", progress=False)
    assert TwoStageToy.calls == {"pre": 8, "main": 12}  # 256 rows / 64 = 4 batches per epoch

    # main has 4 batches per epoch: the 7th call is batch 3 of its epoch 2, after the checkpoint of its epoch 1
    TwoStageToy.fail_at, TwoStageToy.calls = ("main", 2, 7), {}
    with pytest.raises(Interrupted):
        train_run(cfg, tmp_path / "cut", progress=False)
    assert not (tmp_path / "cut" / "results.json").exists()
    TwoStageToy.fail_at, TwoStageToy.calls = None, {}
    resumed = train_run(cfg, tmp_path / "cut", progress=False)
    assert TwoStageToy.calls == {"main": 8}  # only the 2 remaining epochs of stage main ran
    assert resumed["metrics"] == full["metrics"] and resumed["history"] == full["history"]
    a, b = load_checkpoint(tmp_path / "full")[0], load_checkpoint(tmp_path / "cut")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(h["stage"], h["epoch"]) for h in full["history"]] == [("pre", 1), ("pre", 2), ("main", 1), ("main", 2),
                                                                   ("main", 3)]
