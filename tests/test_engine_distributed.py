"""Two gloo processes on CPU (torchrun) train like one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from bitrieve.checkpoint import load_checkpoint

CONFIG = {
    "method": "toy_linear", "bits": 8, "seed": 5, "device": "cpu", "tracking": "none",
    # global batch 32 (16 per rank with 2 ranks), every batch full, so both runs see identical global batches;
    # toy_linear's heads run through parallel.rowwise: each rank computes half of every global batch
    "params": {"epochs": 2, "batch_size": 32, "max_rows": 256, "drop_last": True, "optimizer": "sgd",
               "momentum": 0.9, "lr_image": 0.05, "lr_text": 0.02},
    "eval": {"query_limit": 100, "ks": [20]},
}


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


# three processes start torch (~20 s of CPU); part of the default run because CI must show DDP matches one process
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_processes_match_one(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.Popen([sys.executable, "-m", "bitrieve", "train", str(config), "--out", str(one),
                               "--no-progress"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "bitrieve", "train", str(config), "--out", str(two), "--no-progress"],
                           env=_env(), capture_output=True, text=True, timeout=300)
    out, _ = single.communicate(timeout=300)
    assert single.returncode == 0, out.decode()
    assert multi.returncode == 0, multi.stdout[-3000:] + multi.stderr[-3000:]

    a = json.loads((one / "results.json").read_text())
    b = json.loads((two / "results.json").read_text())
    assert a["env"]["world_size"] == 1 and b["env"]["world_size"] == 2
    # tolerance: the two runs differ only in float summation order (all-gather, all-reduce of gradients)
    for ha, hb in zip(a["history"], b["history"], strict=True):
        for k in ("loss", "similarity", "quantization"):
            assert hb[k] == pytest.approx(ha[k], rel=1e-5, abs=1e-7), k
    pa, pb = load_checkpoint(one)[0], load_checkpoint(two)[0]
    for k in pa:
        torch.testing.assert_close(pb[k], pa[k], rtol=1e-5, atol=1e-6)
    for task in a["metrics"]:
        for k, v in a["metrics"][task].items():
            assert b["metrics"][task][k] == pytest.approx(v, abs=1e-9), (task, k)
