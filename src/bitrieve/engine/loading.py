"""Building a run's method: the seeded construction from a config (``build_method``) and the rebuilding of a trained
run from its directory (``load_run``: YAML + safetensors, no code executed)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from bitrieve.checkpoint import CHECKPOINT, load_checkpoint
from bitrieve.config import RunConfig, load_config
from bitrieve.data.store import in_memory
from bitrieve.data.types import CrossModalData
from bitrieve.devices import resolve_device
from bitrieve.engine.runs import load_run_config
from bitrieve.engine.seeding import INIT, derive_seed, seed_everything
from bitrieve.errors import ConfigError
from bitrieve.methods.base import DataInfo, HashMethod


def data_info(data: CrossModalData) -> DataInfo:
    """What the method may know when it is built: shapes and counts of the train split, never label values."""
    train = data["train"]
    return DataInfo(
        feature_dims={m: int(np.prod(a.shape[1:])) for m, a in train.inputs.items()},
        input_shapes={m: tuple(int(s) for s in a.shape[1:]) for m, a in train.inputs.items()},
        num_labels=int(train.labels.shape[1]),
        num_train=len(train),
        card=dict(data.card),
    )


def build_method(cfg: RunConfig, data: CrossModalData) -> HashMethod:
    """Seeded construction of the configured method (model initialisation depends on the run seed only)."""
    from bitrieve.methods import get_method

    cls = get_method(cfg.method)
    missing = [m for m in cls.modalities if m not in data["train"].inputs]
    if missing:
        raise ConfigError(f"key 'method': '{cfg.method}' needs modalities {list(cls.modalities)}, data '{cfg.data}' "
                          f"has {sorted(data['train'].inputs)}")
    seed_everything(derive_seed(cfg.seed, INIT))
    return cls(cfg.method_params(), cfg.bits, data_info(data))


def load_run(run_dir: str | Path, device: str | None = None, data: CrossModalData | None = None,
             loader: Callable[[str], CrossModalData] | None = None):
    """``(cfg, method)`` of a run: config.yaml -> build on the run's data -> ``prepare`` (only for a method with
    ``prepare_on_load``) -> checkpoint's tensors.

    The method is on ``device`` (default: the run's configured device), in eval mode. Loading executes no code from
    the run directory (YAML + safetensors). ``data``: the already loaded dataset, to avoid reading it twice;
    ``loader``: ``data spec -> CrossModalData`` used instead of ``load_data`` (a command's per-process cache, so a
    store is opened once). A store opens lazily: only its train split is read here (by ``prepare``).
    """
    from bitrieve.data import load_data

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a bitrieve run directory)")
    cfg = load_run_config(run_dir) if data is None else load_config(run_dir / "config.yaml")  # data from any cwd
    if device is not None:
        cfg = cfg.model_copy(update={"device": device})
    ckpt = load_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: no {CHECKPOINT} (train the run first: bitrieve train CONFIG --out "
                                f"{run_dir})")
    dev = resolve_device(cfg.device)
    if data is None:
        data = loader(cfg.data) if loader is not None else load_data(cfg.data)
    method = build_method(cfg, data)
    if method.prepare_on_load:  # else what prepare fits for encode is in the checkpoint (HashMethod.prepare_on_load)
        method.prepare(in_memory(data["train"]))  # only the train split is read (lazily opened stores)
    method.to(dev)
    method.load_state_dict({k: v.to(dev) for k, v in ckpt[0].items()})
    method.eval()
    method.checkpoint_state = {"stage": ckpt[2].get("stage"), "epoch": ckpt[2].get("epoch")}
    return cfg, method
