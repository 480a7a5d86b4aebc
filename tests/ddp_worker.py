"""One process of tests/test_ddp_equivalence.py: train every named method a few steps through the engine's
``update_batch`` and write the per-step losses and final weights to a JSON file.

Run as ``python tests/ddp_worker.py [--shard-batch] OUT METHOD [METHOD ...]`` (writes ``OUT.rank<r>``); with ``WORLD_SIZE`` / ``RANK`` /
``MASTER_ADDR`` / ``MASTER_PORT`` in the environment it joins a gloo process group first (as under torchrun), so the
same script gives the one-process reference (no such variables) and each rank of the multi-process run.
"""

from __future__ import annotations

import contextlib
import json
import sys

import numpy as np
import torch

from bitrieve.data.types import Split
from bitrieve.engine import distributed as ddp
from bitrieve.engine.steps import update_batch
from bitrieve.engine.epochs import TrainInputs
from bitrieve.engine.optimizers import make_optimizer
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo
from small_methods import small_settings

DIMS = {"image": 12, "text": 6}
N_TRAIN, N_LABELS, BITS, STEPS = 64, 3, 16, 3
BATCH = 11  # odd: the two ranks' shards differ in size (6 + 5), so the padding of parallel.rowwise is exercised
SMALL = small_settings(BATCH)  # tests/small_methods.py


def train_split(modalities) -> Split:
    rng = np.random.default_rng(0)
    inputs = {m: np.abs(rng.normal(size=(N_TRAIN, DIMS[m]))).astype(np.float32) for m in modalities}
    labels = np.eye(N_LABELS, dtype=np.uint8)[rng.integers(0, N_LABELS, N_TRAIN)]
    return Split(inputs, labels, np.arange(N_TRAIN))


def info_for(cls) -> DataInfo:
    return DataInfo(feature_dims={m: DIMS[m] for m in cls.modalities}, input_shapes={m: (DIMS[m],) for m in cls.modalities},
                    num_labels=N_LABELS, num_train=N_TRAIN)


def run_method(name: str, info: ddp.DistInfo, shard_batch: bool = False) -> dict:
    """``shard_batch``: the CONTROL - each rank gets only its rows ``rank::world`` of every global batch (what the
    engine did before 2026-12-06), which must NOT reproduce one process."""
    cls = get_method(name)
    params = dict(SMALL.get(name, {}))
    torch.manual_seed(0)
    train = train_split(cls.modalities)
    method = cls(cls.Params(**params), BITS, info_for(cls))
    method.prepare(train)
    method.train()
    inputs = TrainInputs(train, method, torch.device("cpu"))
    order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # dropout masks, flips: the same generator state on every rank and in one process
    losses, rows_computed = [], []
    hooks = [m.register_forward_pre_hook(lambda mod, args: rows_computed.append(int(args[0].shape[0])))
             for m in method.modules() if isinstance(m, torch.nn.Linear)]
    for si, stage in enumerate(method.stages()):
        opt, _ = make_optimizer(method, stage)
        params_list = [p for g in opt.param_groups for p in g["params"]]
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        for step in range(STEPS):
            rows = order[step * BATCH:(step + 1) * BATCH]
            if shard_batch:
                rows = rows[info.rank::info.world_size]
            out = update_batch(stage, stage.loss, inputs.batch(rows), opt, params_list, scaler,
                               contextlib.nullcontext, info, f"stage {si} step {step}")
            losses.append(float(out["loss"].detach()))
    for h in hooks:
        h.remove()
    weights = {k: v.detach().double().reshape(-1).tolist() for k, v in method.state_dict().items()
               if v.is_floating_point()}
    # the fewest rows any linear layer computed at once: < BATCH where the method split its networks across ranks
    return {"losses": losses, "weights": weights, "min_rows": min(rows_computed, default=0)}


def main(argv: list[str]) -> None:
    shard_batch = argv[0] == "--shard-batch"
    out_path, names = argv[int(shard_batch)], argv[int(shard_batch) + 1:]
    torch.set_num_threads(1)
    info = ddp.init_from_env("cpu")
    result = {name: run_method(name, info, shard_batch) for name in names}
    with open(f"{out_path}.rank{info.rank}", "w") as f:
        json.dump(result, f)
    ddp.shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1:])
