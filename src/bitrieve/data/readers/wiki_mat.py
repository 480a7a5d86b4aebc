"""Wiki `wiki_data.mat` (MATLAB v7.3) -> Source; the parsing lives in `bitrieve.data.wiki.read_wiki_mat`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.source import Source
from bitrieve.data.wiki import read_wiki_mat


def read(path: str, **_: object) -> Source:
    p = Path(path)
    if p.is_dir():
        p = p / "wiki_data.mat"
    d = read_wiki_mat(p)
    tr, te = d["train"], d["query"]
    inputs = {m: np.concatenate([tr.inputs[m], te.inputs[m]]) for m in tr.inputs}
    official = np.array(["train"] * len(tr) + ["test"] * len(te))
    card = {k: v for k, v in d.card.items() if k not in ("counts", "protocol", "split_seed")}
    return Source(inputs, np.concatenate([tr.labels, te.labels]), np.concatenate([tr.ids, te.ids]), card, official)
