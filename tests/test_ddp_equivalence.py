"""Every registered trainable method trains the same model in 2 gloo processes as in 1 (issue 21, 2/7).

tests/ddp_worker.py trains each method for 3 optimiser updates per stage on the same global batches (11 rows, so the
two ranks' shards are 6 + 5 rows) once without a process group and once as 2 ranks; the per-step losses must agree to
1e-6 relative (the issue asked 1e-6 under a float64 switch, 1e-4 in float32; float32 already meets 1e-6: measured
at most 1.4e-7) and the final weights to 1e-5 absolute on BOTH ranks (float32: only the summation order may differ).
The control runs the pre-fix scheme - each rank trains on its own half of every batch - and must disagree, so the
comparison can fail. Methods split their per-row networks across ranks (bitrieve/parallel.py); those whose networks
draw dropout compute the whole batch on every rank, which the test also records.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bitrieve.methods import REGISTRY, get_method

WORKER = Path(__file__).with_name("ddp_worker.py")
BATCH = 11


def _instance(name):
    """The method as the worker builds it (its smoke_params, tests/small_methods.py)."""
    import ddp_worker

    cls = get_method(name)
    return cls(cls.Params(**ddp_worker.SMALL[name]), ddp_worker.BITS, ddp_worker.info_for(cls))


def _closed_form(name) -> bool:  # a closed-form fit (CCA-ITQ) declares no stage: nothing to train
    return not _instance(name).stages()


def _splittable(name) -> bool:
    """Observed, not read from parallel.py: in training mode, does encoding a batch depend on the random draw
    (dropout) or on the other rows (batch statistics)? If neither, each rank must compute only its shard."""
    import ddp_worker

    method = _instance(name).train()
    train = ddp_worker.train_split(method.modalities)
    method.prepare(train)
    with torch.no_grad():
        for modality in method.modalities:
            x = torch.as_tensor(train.inputs[modality][:BATCH])
            torch.manual_seed(1)
            a = method.encode(modality, x)
            torch.manual_seed(2)
            if not torch.equal(method.encode(modality, x), a):  # another draw, another output
                return False
            torch.manual_seed(1)
            if not torch.allclose(method.encode(modality, x[:6]), a[:6], atol=1e-6):  # rows see each other
                return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, names: list[str], rank: int | None, port: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", BITRIEVE_DIST_TIMEOUT="60")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if rank is not None:
        env.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
    return subprocess.Popen([sys.executable, str(WORKER), *extra, str(out), *names], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(procs):
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    names = [n for n in sorted(REGISTRY) if not n.startswith("toy")]  # every registered method, new ones too
    port, control_port = _free_port(), _free_port()
    procs = [_launch(tmp / "one", names, None, 0), _launch(tmp / "two", names, 0, port),
             _launch(tmp / "two", names, 1, port)]
    _finish(procs)
    control = [_launch(tmp / "ctl", ["djsrh"], r, control_port, "--shard-batch") for r in (0, 1)]
    _finish(control)
    load = lambda p: json.loads(p.read_text())  # noqa: E731
    return (names, load(tmp / "one.rank0"), [load(tmp / f"two.rank{r}") for r in (0, 1)],
            load(tmp / "ctl.rank0"))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_ranks_train_the_one_process_model(runs):
    names, one, two, _ = runs
    trained = [n for n in names if one[n]["losses"]]
    assert set(names) - set(trained) == {n for n in names if _closed_form(n)}
    for rank, other in enumerate(two):
        for name in names:
            a, b = one[name], other[name]
            assert len(a["losses"]) == len(b["losses"]), name
            for step, (x, y) in enumerate(zip(a["losses"], b["losses"])):
                assert y == pytest.approx(x, rel=1e-6, abs=1e-7), (name, rank, step)
            assert a["weights"].keys() == b["weights"].keys()
            for k in a["weights"]:
                torch.testing.assert_close(torch.tensor(b["weights"][k]), torch.tensor(a["weights"][k]),
                                           rtol=0, atol=1e-5, msg=lambda m: f"{name} rank {rank} {k}: {m}")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_networks_are_split_where_they_can_be(runs):
    names, one, two, _ = runs
    for name in names:
        if _closed_form(name):
            continue
        if _splittable(name):  # each rank computed at most its shard (6 of the 11 rows)
            assert max(r[name]["min_rows"] for r in two) <= 6, name
        else:  # dropout in the per-row networks: the whole batch on every rank, as in one process
            assert min(r[name]["min_rows"] for r in two) == one[name]["min_rows"], name


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_control_half_batches_differ(runs):
    _, one, _, control = runs
    a, b = one["djsrh"]["losses"], control["djsrh"]["losses"]
    assert max(abs(x - y) / abs(x) for x, y in zip(a, b)) > 1e-2
