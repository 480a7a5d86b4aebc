"""UCMFH release (Xia et al., "When CLIP meets cross-modal hashing retrieval", Information Fusion 2023; code
XinyuXia97/UCMFH `load_dataset.py`): a directory with `train.pkl`, `query.pkl`, `retrieval.pkl`, each a pickled dict
{"image": N x 512 CLIP image features, "text": N x 512 CLIP text features, "label": N x C multi-hot}.

Read ONLY through the restricted unpickler (data/safe_pickle.py): a pickle that names anything but numpy arrays and
builtins is refused. The released loader trains on the first 4,992 training rows (`[:4992]`, a multiple of its batch
size 128) and uses `drop_last=True` for query/retrieval too; protocol "ucmfh" reproduces the 4,992 training rows,
"official" keeps every row. Ids: train rows first, then query, then retrieval, in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.readers.common import hashes, numeric_matrix, require_file
from bitrieve.data.safe_pickle import safe_load
from bitrieve.data.source import Source
from bitrieve.data.types import DataError

KEYS = ("image", "text", "label")


def read(path: str, **_: object) -> Source:
    root = Path(path)
    parts, files = [], []
    for s in ("train", "query", "retrieval"):
        f = require_file(root / f"{s}.pkl", f"UCMFH {s} split: pickled dict with 'image' (N, 512), 'text' (N, 512), "
                         "'label' (N, C) multi-hot")
        d = safe_load(f, encoding="latin1")
        if not isinstance(d, dict):
            raise DataError(f"{f}: expected a dict with keys {KEYS}, got {type(d).__name__}")
        for k in KEYS:
            if k not in d:
                raise DataError(f"{f}: missing key '{k}' (keys: {sorted(map(str, d))})")
        img, txt, lab = (numeric_matrix(d[k], f, k, "an (N, D) array") for k in KEYS)
        if not (len(img) == len(txt) == len(lab)):
            raise DataError(f"{f}: row counts disagree: image {len(img)}, text {len(txt)}, label {len(lab)}")
        parts.append((s, img, txt, lab))
        files.append(f)
    widths = {(p[1].shape[1], p[2].shape[1], p[3].shape[1]) for p in parts}
    if len(widths) != 1:
        raise DataError(f"{root}: feature/label widths differ between the three files: {sorted(widths)}")
    n = sum(len(p[1]) for p in parts)
    card = {"name": f"ucmfh-{root.name}", "version": "UCMFH release (CLIP ViT-B/32 features, 512-d)",
            "source": str(root), "sha256": hashes(*files),
            "citation": "Xia, Dong, Li, Zhu, Ying, Information Fusion 2023 (UCMFH)",
            "features": {"image": "512-d CLIP image features (as released)", "text": "512-d CLIP text features"}}
    return Source({"image": np.concatenate([p[1] for p in parts]).astype(np.float32),
                   "text": np.concatenate([p[2] for p in parts]).astype(np.float32)},
                  np.concatenate([p[3] for p in parts]), np.arange(n, dtype=np.int64), card,  # checked by validate
                  np.concatenate([[p[0]] * len(p[1]) for p in parts]))
