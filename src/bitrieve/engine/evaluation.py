"""Evaluation inside the engine: encode query/retrieval splits, sign, call ``bitrieve.eval``, code diagnostics.

The metric code lives in ``bitrieve.eval`` (imported lazily); the encode loop and the sign rule in
``bitrieve.codes``. This module produces the codes, runs the extra evaluations that ``eval.extra_evaluations`` names
(mAP@K definitions, unseen-database, a method's own such as pair-input: methods/families/pair_input.py) and states the
protocol (tie policy, mAP@all / @K, query and database counts) next to the numbers.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from bitrieve.codes import sign
from bitrieve.codes.diagnostics import code_diagnostics
from bitrieve.codes.encode import encode
from bitrieve.data.types import CrossModalData, Split
from bitrieve.tasks import TASKS
from bitrieve.threads import restore_torch_threads


def encode_split(method, split: Split, modality: str, device: torch.device, chunk: int = 2048,
                 autocast: Callable[[], Any] | None = None, rows: int | None = None,
                 progress: bool = False) -> torch.Tensor:
    """Continuous codes (N, bits) float32 on CPU of one split's ``modality`` (``bitrieve.codes.encode.encode``)."""
    return encode(method, split.inputs[modality], modality, device=device, batch_size=chunk, rows=rows,
                  autocast=autocast, progress=progress)


def collapse_warnings(diag: dict[str, dict[str, float]]) -> list[str]:
    """Plain-words warnings about degenerate codes (per modality of the retrieval codes)."""
    out = []
    for m, d in diag.items():
        if d["constant_bit_fraction"] > 0.5:
            out.append(f"COLLAPSE ({m}): {int(d['constant_bits'])} of the bits are constant over the retrieval set "
                       f"({d['constant_bit_fraction']:.0%} > 50%)")
        if d["largest_code_share"] > 0.5:
            out.append(f"COLLAPSE ({m}): one code is shared by {d['largest_code_share']:.1%} of the retrieval items")
        if d["mean_abs_bit_balance"] > 0.9:
            out.append(f"COLLAPSE ({m}): mean |bit balance| is {d['mean_abs_bit_balance']:.2f} > 0.9 "
                       "(bits are nearly constant)")
    return out


def eval_tasks(method, cfg_tasks: list[str]) -> list[str]:
    mods = tuple(method.modalities)
    if mods == ("image",):
        return ["i2i"]
    return [t for t in cfg_tasks if all(m in mods for m in TASKS[t])]


def _protocol_name(card: dict[str, Any], default: str) -> str:
    """The protocol's name: stores keep a dict ({"name": ..., "seed": ...}), the embedded Wiki reader a string."""
    p = card.get("protocol", card.get("name", default))
    return str(p.get("name", default)) if isinstance(p, dict) else str(p)


def protocol_info(data: CrossModalData, cfg, tasks: list[str], n_query: int) -> dict[str, Any]:
    from bitrieve.eval.map_definitions import RENAMED, canonical_name

    ev = cfg.eval
    kinds = (["map@all"] if ev.map_all else []) + [f"map@{k}" for k in ev.ks]
    renamed = [n for n in ev.extra_evaluations if n.lower() in RENAMED]
    info = {
        "name": _protocol_name(data.card, cfg.data),
        "relevance": "share >= 1 label",
        "tie": ev.tie,
        "ranking": "Hamming distance ascending",
        "map": kinds,
        "tasks": tasks,
        "n_query": n_query,
        "n_retrieval": len(data["retrieval"]),
        "query_limit": ev.query_limit,
        "retrieval_is_train": data["retrieval"] is data["train"],
        "extra_protocols": [canonical_name(n) if n in renamed else n for n in ev.extra_evaluations],
    }
    if renamed:  # an old config still works; the record says what its name now means
        info["notes"] = [f"eval.extra_evaluations: '{n}' is the old name of '{canonical_name(n)}' "
                         f"(docs/evaluation.md); its numbers are stored under '{canonical_name(n)}'" for n in renamed]
    return info


def split_extra_evaluations(method, names) -> tuple[list[str], list[str]]:
    """``eval.extra_evaluations`` -> (mAP@K definitions of ``bitrieve.eval``, the others: database evaluations such
    as ``unseen-database`` and the method's own ``extra_evaluations``); ValueError naming ``eval.extra_evaluations``
    for a name none knows. Called before training so a typo fails before anything runs. A renamed mAP@K definition
    (``djsrh``) is returned under its current name (``dcmh``)."""
    from bitrieve.eval.map_definitions import MAP_DEFINITIONS, RENAMED, canonical_name
    from bitrieve.eval.unseen import DATABASE_PROTOCOLS

    own = tuple(getattr(method, "extra_evaluations", ()) or ())
    definitions, other = [], []
    for name in names:
        if canonical_name(name) in MAP_DEFINITIONS:
            definitions.append(canonical_name(name))
        elif name in own or name in DATABASE_PROTOCOLS:
            other.append(name)
        else:
            raise ValueError(f"eval.extra_evaluations: unknown evaluation {name!r} for method "
                             f"'{getattr(method, 'name', '?')}'; known: {sorted(MAP_DEFINITIONS)} (mAP@K definitions) "
                             f"+ {sorted(DATABASE_PROTOCOLS) + sorted(own)} (renamed: {sorted(RENAMED)})")
    return definitions, other


def evaluate_extra(method, name: str, data: CrossModalData, eval_cfg, device: Any = "cpu") -> dict[str, Any]:
    """The results.json block of a method's own extra evaluation ``name`` (a key of ``method.extra_evaluations``):
    what its hook returns, with its description."""
    spec = method.extra_evaluations.get(name)
    if spec is None:
        raise ValueError(f"method '{method.name}' offers no extra evaluation '{name}' "
                         f"(it offers: {sorted(method.extra_evaluations) or 'none'})")
    return {**spec.run(method, data, eval_cfg, device), "description": spec.description}


def evaluation_status(data: CrossModalData, cfg) -> str:
    """The status line printed before an evaluation (a few seconds on Wiki; the first one compiles the kernels)."""
    from bitrieve.console import first_compile_note

    nq = len(data["query"]) if cfg.eval.query_limit is None else min(cfg.eval.query_limit, len(data["query"]))
    return (f"evaluating: encoding {nq:,} queries and {len(data['retrieval']):,} retrieval items, then "
            f"{', '.join(cfg.eval.tasks)} metrics" + first_compile_note("bitrieve.eval._kernels"))


@restore_torch_threads()  # whatever numba's threading layer does, torch's thread count is unchanged afterwards
def evaluate_method(method, data: CrossModalData, cfg, device: torch.device,
                    autocast: Callable[[], Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Encode, sign and evaluate; returns {"metrics", "extra_evaluations", "curves", "protocol", "codes"}."""
    from bitrieve.eval.unseen import DATABASE_PROTOCOLS, leave_one_out_retrieval

    beval = _eval_api()
    ev = cfg.eval
    map_definitions, others = split_extra_evaluations(method, ev.extra_evaluations)
    tasks = eval_tasks(method, list(ev.tasks))
    mods = sorted({m for t in tasks for m in TASKS[t]})
    query, retrieval = data["query"], data["retrieval"]
    n_query = len(query) if ev.query_limit is None else min(ev.query_limit, len(query))
    hq = {m: encode_split(method, query, m, device, autocast=autocast, rows=n_query, progress=progress) for m in mods}
    hr = {m: encode_split(method, retrieval, m, device, autocast=autocast, progress=progress) for m in mods}
    out: dict[str, Any] = {"protocol": protocol_info(data, cfg, tasks, n_query)}
    qlab, rlab = query.labels[:n_query], retrieval.labels

    embedding = getattr(method, "output", "hash") == "embedding"
    binary = method.hamming_metrics
    labelled = qlab.shape[1] > 0 and bool(rlab.any())
    out["metrics"], out["curves"], out["extra_evaluations"] = {}, {}, {}
    if embedding:  # real-valued cosine Recall@K is the headline; with binary: true also on the sign codes
        out["protocol"]["ranking"] = "cosine similarity descending" + (" (and Hamming on sign codes)" if binary else "")
        out["protocol"]["relevance"] = "Recall@K: same pair within the query split (group: the image a caption " \
            "belongs to)" + ("; mAP: query vs retrieval, share >= 1 label" if binary and labelled else "")
        out["metrics"] = _recall(beval, hq, query, tasks, n_query, binary=False)
        if "i2t" in out["metrics"] and "t2i" in out["metrics"]:  # rsum over both directions, stored with each
            rsum = sum(v for t in ("i2t", "t2i") for k, v in out["metrics"][t].items() if k.startswith("r@"))
            for t in ("i2t", "t2i"):
                out["metrics"][t]["rsum"] = float(rsum)
        if binary:
            for task, vals in _recall(beval, hq, query, tasks, n_query, binary=True).items():
                out["metrics"][task].update({f"hamming_{k}": v for k, v in vals.items()})
    if binary and (labelled or not embedding):
        res = dict(beval.evaluate_retrieval({m: sign(h) for m, h in hq.items()},
                                            {m: sign(h) for m, h in hr.items()}, qlab, rlab,
                                            tasks=tuple(tasks), ks=tuple(ev.ks), map_all=ev.map_all, tie=ev.tie,
                                            map_definitions=tuple(map_definitions), curves=True))
        out["curves"] = res.pop("curves", {})
        out["extra_evaluations"] = res.pop("map_definitions", {})
        for task, vals in res.items():
            out["metrics"].setdefault(task, {}).update(vals)
    for name in others:  # database and method-specific evaluations, stored beside the mAP@K definitions
        if name in DATABASE_PROTOCOLS:  # unseen-database: the query split ranks itself, leave-one-out
            if not (binary and labelled):
                continue
            block = leave_one_out_retrieval({m: sign(h) for m, h in hq.items()}, qlab, tasks=tuple(tasks),
                                            ks=tuple(ev.ks), map_all=ev.map_all, tie=ev.tie, progress=progress)
            out["extra_evaluations"][name] = {**block, "description": DATABASE_PROTOCOLS[name]}
            continue
        out["extra_evaluations"][name] = evaluate_extra(method, name, data, ev, device)
    out["codes"] = {m: code_diagnostics(h) for m, h in hr.items()}
    out["hash_codes"] = binary  # collapse warnings only for codes that are used as hash codes
    return out


def _eval_api():
    """``evaluate_retrieval`` and ``recall_at_k`` from ``bitrieve.eval`` (imported lazily), or from its modules."""
    import importlib
    from types import SimpleNamespace

    beval = importlib.import_module("bitrieve.eval")
    api = {}
    for name, module in (("evaluate_retrieval", "bitrieve.eval.metrics"), ("recall_at_k", "bitrieve.eval._recall")):
        fn = getattr(beval, name, None)
        if fn is None:
            try:
                fn = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                fn = None
        api[name] = fn
    return SimpleNamespace(**api)


def _recall(beval, hq, query: Split, tasks, n_query, binary: bool) -> dict[str, dict[str, float]]:
    """Recall@K for pair retrieval (VSE++ protocol): the query split's images against the query split's texts (e.g.
    Flickr30K: 1,000 test images x their 5,000 captions). The ground truth is the row's ``group`` side column
    (caption data: the image a caption belongs to; data/captions.py) or its id. Images are taken once per group
    (caption rows repeat their image), so i2t counts a hit when any caption of the image is retrieved."""
    from bitrieve.data.extras import extras_of

    groups = np.asarray(extras_of(query).get("group", query.ids))[:n_query]
    out = {}
    for t in tasks:
        qm, dm = TASKS[t]
        if qm == dm:
            continue  # i2i / t2t: no pair ground truth
        q, qgroups = (_first_per_group(hq[qm], groups) if qm == "image" else (hq[qm], groups))
        d, dgroups = (_first_per_group(hq[dm], groups) if dm == "image" else (hq[dm], groups))
        if binary:
            q, d = sign(q), sign(d)
        else:
            q, d = q.numpy(), d.numpy()
        out[t] = dict(beval.recall_at_k(q, d, qgroups, dgroups, binary=binary))
    return out


def _first_per_group(h: torch.Tensor, groups: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    _, first = np.unique(groups, return_index=True)
    first = np.sort(first)
    return h[torch.from_numpy(first)], groups[first]
