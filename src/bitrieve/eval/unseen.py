"""The unseen-database evaluation protocol: the query split is its own database, leave-one-out.

On Wiki (and any protocol whose retrieval set is the training set) the standard evaluation ranks database items whose
codes were fitted during training; a method whose training target leans on one modality (DJSRH's joint similarity is
70% text) can place the training codes well without learning hash functions that generalise. ``unseen-database``
ranks items the model never saw: for query i of the query split, the database is the other n - 1 items of the same
split (their other modality for i2t / t2i), i's own pair left out. Relevance, tie policy and metric definitions are
the standard ones (bitrieve.eval.metrics); mAP@K uses the top-K definition.

The computation is literally that definition (one ranking per query over the n - 1 others), so it needs no
approximation; it costs n rankings of n - 1 items per task, cheap for query splits (693 on Wiki, 2,000 on
MIRFlickr / NUS-WIDE).
"""

from __future__ import annotations

import numpy as np

from bitrieve.errors import TooFewItems

from .hamming import Codes
from .metrics import TASKS, pack_labels, ranking_summary
from .map_definitions import check_tie

UNSEEN_DATABASE = "unseen-database"
DESCRIPTION = ("database = the query split itself, leave-one-out: each query ranks the other n - 1 query items (its "
               "own pair left out), none of which was seen in training; relevance, ties and mAP as in the standard "
               "protocol")
DATABASE_PROTOCOLS = {UNSEEN_DATABASE: DESCRIPTION}


def leave_one_out_retrieval(codes: dict, labels, tasks=("i2t", "t2i"), ks=(50,), map_all: bool = True,
                            tie: str = "stable", progress: bool = False) -> dict:
    """``{task: {"map@all", "map@K"..., "p@h<=2", "n_query", "n_retrieval"}}`` of the unseen-database protocol.

    ``codes``: {"image": (n, bits), "text": (n, bits)} ±1 / 0/1 codes of the SAME n items (row i of each modality is
    pair i); ``labels``: (n, C) multi-hot (or 1-d class ids). Query i ranks rows j != i of the other modality
    (i2t / t2i) or of its own (i2i / t2t) in row order (the stable tie policy breaks ties by that order).
    """
    check_tie(tie)
    packed = {m: Codes.pack(c, f"codes[{m!r}]") for m, c in codes.items()}
    sizes = {m: len(c) for m, c in packed.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"unseen-database: every modality must code the same items, got row counts {sizes}")
    n = next(iter(sizes.values()))
    if n < 2:
        raise TooFewItems(f"unseen-database: needs at least 2 query items (each ranks the others), got {n}")
    lab = np.asarray(labels)
    if lab.shape[0] != n:
        raise ValueError(f"unseen-database: labels have {lab.shape[0]} rows but there are {n} coded items")
    pack_labels(lab, "labels")  # validates once, naming the problem, before n rankings
    out: dict = {}
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unseen-database: unknown task {task!r}; expected some of {list(TASKS)}")
        qm, dm = TASKS[task]
        if qm not in packed or dm not in packed:
            continue
        q_words, d_words, bits = packed[qm].words, np.ascontiguousarray(packed[dm].words), packed[dm].bits
        sums = {"map@all": 0.0, "p@h<=2": 0.0, **{f"map@{k}": 0.0 for k in ks}}
        from bitrieve.console import progress as progress_bar  # log-friendly when stderr is not a terminal

        for i in progress_bar(range(n), desc=f"unseen-database {task}", leave=False, enabled=progress):
            others = np.r_[0:i, i + 1:n]
            s = ranking_summary(Codes(q_words[i:i + 1], bits), Codes(d_words[others], bits), lab[i:i + 1],
                                lab[others], top_ks=list(ks), tie=tie)
            sums["map@all"] += s["map@all"]
            sums["p@h<=2"] += s["p@h<=2"]
            for k in ks:
                sums[f"map@{k}"] += s["top"][k]
        res = {k: v / n for k, v in sums.items() if map_all or k != "map@all"}
        res.update(n_query=n, n_retrieval=n - 1)
        out[task] = res
    return out
