"""Pair-input evaluation: both codes of an item from its (image, text) pair - the released UCMFH evaluation.

NOT uni-modal cross-modal retrieval: an image query's code uses its text (UCMFH maintainer, issue #4). A method
offers it by putting these :class:`~bitrieve.methods.base.ExtraEvaluation`s in its ``extra_evaluations`` and
implementing the batch hook ``encode_pair(image, text, whole_batch_sequence=False) -> (image outputs, text
outputs)``; the batching loop is the shared one (:func:`bitrieve.codes.encode.encode_pairs`), the ranking is
``bitrieve.eval``'s. ``eval.extra_evaluations`` names one; the engine runs it like any method's extra evaluation and
results.json stores its mAP under that name in the ``protocols`` block, with the description below.

The released evaluations differ only in their batching (batches of 128):
  * ``whole_batch_sequence``: the released UCMFH evaluation feeds a test batch as ONE sequence, so the items of a
    batch attend to each other (parts/transformer.py);
  * ``drop_last``: the released query/retrieval loaders use ``drop_last=True``, so the last incomplete batch of the
    queries and of the database is never evaluated.
"""

from __future__ import annotations

from typing import Any

from bitrieve.codes import sign
from bitrieve.codes.encode import encode_pairs
from bitrieve.methods.base import ExtraEvaluation


def pair_input_map(method, data, ks=(50,), map_all: bool = False, whole_batch_sequence: bool = True,
                   drop_last: bool = True, tie: str = "stable", batch_size: int = 128,
                   device: Any = "cpu") -> dict[str, dict[str, float]]:
    """mAP of pair-input codes (defaults: the released UCMFH evaluation's batching), query vs retrieval split.

    Returns {"i2t": {"map@50": ..., "n_query": ..., "n_retrieval": ...}, "t2i": {...}} (plus "map@all" when
    ``map_all``); ``n_query`` / ``n_retrieval`` count the rows evaluated (fewer with ``drop_last``).
    """
    from bitrieve.eval import evaluate_retrieval

    codes, labels = {}, {}
    for split in ("query", "retrieval"):
        s = data[split]
        hv, ht = encode_pairs(method, s.inputs["image"], s.inputs["text"], device=device, batch_size=batch_size,
                              drop_last=drop_last, whole_batch_sequence=whole_batch_sequence)
        codes[split] = {"image": sign(hv), "text": sign(ht)}
        labels[split] = s.labels[: hv.shape[0]]
    res = evaluate_retrieval(codes["query"], codes["retrieval"], labels["query"], labels["retrieval"],
                             tasks=("i2t", "t2i"), ks=tuple(ks), map_all=map_all, tie=tie, curves=False)
    keep = (["map@all"] if map_all else []) + [f"map@{k}" for k in ks]
    return {t: {**{k: float(res[t][k]) for k in keep}, "n_query": float(len(labels["query"])),
                "n_retrieval": float(len(labels["retrieval"]))} for t in ("i2t", "t2i")}


def _pair_input(whole_batch_sequence: bool, drop_last: bool):
    """The evaluation hook: the mAP of the run's eval settings (ks, mAP@all, tie rule) with this batching."""

    def run(method, data, eval_cfg, device) -> dict[str, dict[str, float]]:
        return pair_input_map(method, data, ks=tuple(eval_cfg.ks), map_all=eval_cfg.map_all,
                              whole_batch_sequence=whole_batch_sequence, drop_last=drop_last, tie=eval_cfg.tie,
                              device=device)

    return run


PAIR_INPUT: dict[str, ExtraEvaluation] = {
    "ucmfh-pair-input": ExtraEvaluation(
        "released UCMFH evaluation: both codes of an item from its (image, text) pair, a test batch of 128 fed as "
        "one sequence, last incomplete batch dropped (NOT uni-modal retrieval)", _pair_input(True, True)),
    "pair-input": ExtraEvaluation(
        "both codes of an item from its (image, text) pair, every item its own sequence, no row dropped (NOT "
        "uni-modal retrieval)", _pair_input(False, False)),
    "fork-pair-input": ExtraEvaluation(
        "released evaluation of the UCMFH fork (hashNetVersion ICMR.py:141-215): both codes of an item from its "
        "(image, text) pair, every item its own sequence, last incomplete batch of 128 dropped (NOT uni-modal "
        "retrieval)", _pair_input(False, True)),
}
