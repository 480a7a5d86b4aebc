"""Multi-process start-up and run-time faults end every process in one line within BITRIEVE_DIST_TIMEOUT (issue 21).

Each case starts real `bitrieve train` processes with torchrun's environment variables (no torchrun agent, so
nothing else kills the survivors) and a short timeout (5 s): a world size larger than the processes started, a
master nobody listens on, and a rank killed (SIGKILL) in the middle of training.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
TIMEOUT = 5
TOY = {"method": "toy_linear", "bits": 8, "seed": 5, "device": "cpu", "tracking": "none",
       "params": {"epochs": 50, "batch_size": 32, "max_rows": 256, "drop_last": True, "optimizer": "sgd",
                  "sleep_per_batch": 0.2},
       "eval": {"query_limit": 100, "ks": [20]}}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, rank: int, world: int, port: int) -> subprocess.Popen:
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY))
    env = dict(os.environ, OMP_NUM_THREADS="1", BITRIEVE_DIST_TIMEOUT=str(TIMEOUT), WORLD_SIZE=str(world),
               RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return subprocess.Popen([sys.executable, "-m", "bitrieve", "train", str(config), "--out", str(tmp_path / "run"),
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_line_failure(p: subprocess.Popen, within: float) -> str:
    t0 = time.time()
    out, err = p.communicate(timeout=within)
    assert p.returncode != 0
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning")]
    errors = [ln for ln in lines if ln.startswith("bitrieve: error:")]
    # one error line, last; the rest are status lines (no traceback, no C++ backtrace)
    assert len(errors) == 1 and lines[-1] == errors[0], err[-2000:]
    assert all(ln.startswith("bitrieve: ") for ln in lines), err[-2000:]
    assert time.time() - t0 < within
    return errors[0]


def test_world_size_larger_than_the_ranks_started(tmp_path):
    line = _one_line_failure(_start(tmp_path, 0, 2, _port()), within=TIMEOUT + 40)
    assert "WORLD_SIZE=2" in line and "did not all join" in line and "BITRIEVE_DIST_TIMEOUT" in line


def test_unreachable_master(tmp_path):
    line = _one_line_failure(_start(tmp_path, 1, 2, _port()), within=TIMEOUT + 40)
    assert "master 127.0.0.1:" in line and "could not be reached" in line


@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_killed_mid_training_ends_the_other(tmp_path, victim):
    port = _port()
    procs = [_start(tmp_path, r, 2, port) for r in (0, 1)]
    log = tmp_path / "run" / "log.txt"
    t0 = time.time()
    while not (log.is_file() and "start toy_linear" in log.read_text()):  # both ranks joined, training begun
        assert time.time() - t0 < 60 and all(p.poll() is None for p in procs), "training did not start"
        time.sleep(0.2)
    time.sleep(1.0)
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait()
    line = _one_line_failure(procs[1 - victim], within=TIMEOUT + 40)
    assert f"rank {1 - victim}:" in line
