"""Synthetic run directories (results.json + config.yaml) for the report/sweep tests. Written by the tests, no
training involved; values follow simple formulas so expected means and stds are known exactly. The records are
complete (every key the engine writes), so they pass `bitrieve.record.read_record`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml


def synthetic_results(method: str, bits: int, seed: int, i2t: float, t2i: float, *, dataset: str = "wiki",
                      tie: str = "stable", protocol: str = "wiki", n_query: int = 693, n_retrieval: int = 2173,
                      with_map50: bool = True, history_epochs: int = 6) -> dict:
    radius = list(range(bits + 1))
    rng = np.random.default_rng(seed * 1000 + bits)

    def pr(level: float) -> dict:
        recall = [float(1 - np.exp(-3 * r / bits)) for r in radius]
        precision = [float(level + (1 - level) * np.exp(-4 * r / bits) * 0.8) for r in radius]
        return {"radius": radius, "precision": precision, "recall": recall}

    def pn(level: float) -> dict:
        ns = [1, 10, 50, 100, 250, 500, 1000]
        return {"n": ns, "precision": [float(level + 0.3 * np.exp(-n / 200)) for n in ns]}

    def metrics(v: float) -> dict:
        m = {"map@all": v, "p@h<=2": v + 0.1, "queries_without_relevant": 0}
        if with_map50:
            m["map@50"] = v + 0.05
        return m

    history = []
    for e in range(1, history_epochs + 1):
        stage = "pretrain" if e <= history_epochs // 3 else "main"
        loss = float(2.0 * np.exp(-e / 3) + 0.05 * rng.random())
        history.append({"stage": stage, "epoch": e if stage == "pretrain" else e - history_epochs // 3,
                        "loss": loss, "loss_recon": loss * 0.6, "loss_quant": loss * 0.4,
                        "bit_balance": float(0.3 * np.exp(-e / 4)), "lr": 1e-3})
    return {
        "schema": 1, "method": method, "dataset": dataset, "dataset_card_sha256": f"card-{dataset}",
        "config_sha256": f"cfg-{method}-{bits}-{seed}", "bits": bits, "seed": seed,
        "protocol": protocol_block(protocol, tie, n_query, n_retrieval, with_map50),
        "metrics": {"i2t": metrics(i2t), "t2i": metrics(t2i)}, "protocols": {},
        "curves": {"i2t": {"pr": pr(i2t), "p@n": pn(i2t)}, "t2i": {"pr": pr(t2i), "p@n": pn(t2i)}},
        "diagnostics": {"method": {}, "codes": {}, "warnings": []}, "history": history, "env": environment(seed),
        "wall_seconds": 1.0,
    }


def protocol_block(name: str = "wiki", tie: str = "stable", n_query: int = 693, n_retrieval: int = 2173,
                   with_map50: bool = True) -> dict:
    return {"name": name, "relevance": "share >= 1 label", "tie": tie, "ranking": "Hamming distance ascending",
            "map": ["map@all"] + (["map@50"] if with_map50 else []), "tasks": ["i2t", "t2i"], "n_query": n_query,
            "n_retrieval": n_retrieval, "query_limit": None, "retrieval_is_train": False, "extra_protocols": []}


def environment(seed: int = 0) -> dict:
    return {"python": "3.12.0", "torch": "2.6.0", "numpy": "2.0.0", "platform": "test", "device": "cpu",
            "seed": seed, "git_commit": None, "argv": ["test"], "torch_threads": 1, "world_size": 1}


def code_stats(n_items: int = 100, distinct: int = 100, share: float = 0.01, constant_bits: int = 0,
               bits: int = 16) -> dict:
    """A complete ``diagnostics.codes`` entry (the fields the report reads set, the others consistent)."""
    return {"n_items": float(n_items), "mean_abs_bit_balance": 0.1, "max_abs_bit_balance": 0.2,
            "constant_bits": float(constant_bits), "constant_bit_fraction": constant_bits / bits,
            "mean_bit_entropy": 0.9, "distinct_codes": float(distinct), "largest_code_share": share,
            "quantization_gap": 0.1}


def write_run(root: Path, method: str, bits: int, seed: int, i2t: float, t2i: float, params: dict | None = None,
              group: str | None = None, **kw) -> Path:
    res = synthetic_results(method, bits, seed, i2t, t2i, **kw)
    run_dir = Path(root) / (group or f"{method}-{res['dataset']}") / f"b{bits}-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(res))
    cfg = {"method": method, "data": res["dataset"], "bits": bits, "seed": seed, "device": "cpu",
           "params": params or {"alpha": 1.0}, "eval": {"tie": res["protocol"]["tie"]}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run_dir


# method -> (i2t, t2i) per (bits, seed): value = base + 0.01*bits_index + 0.002*seed (so the std is known)
BASE = {"agch": (0.40, 0.38), "djsrh": (0.35, 0.39)}


def value(method: str, task: int, bits_index: int, seed: int) -> float:
    return BASE[method][task] + 0.01 * bits_index + 0.002 * seed


def write_grid(root: Path, bits=(16, 32), seeds=(0, 1, 2), methods=("agch", "djsrh"), **kw) -> list[Path]:
    dirs = []
    for m in methods:
        for bi, b in enumerate(bits):
            for s in seeds:
                dirs.append(write_run(root, m, b, s, value(m, 0, bi, s), value(m, 1, bi, s), **kw))
    return dirs
