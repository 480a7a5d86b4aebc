"""Wiki, original SVCL release layout (Rasiwasia et al., ACM MM 2010, "wikipedia_dataset").

Files in one directory: `raw_features.mat` (MATLAB v5; I_tr (2173,128), I_te (693,128) SIFT BoVW; T_tr (2173,10),
T_te (693,10) LDA topics; one row per sample), `trainset_txt_img_cat.list` / `testset_txt_img_cat.list` (TSV
`<text id>\t<image id>\t<category 1..10>`, same row order as the arrays) and `categories.list` (class names for ids
1..10). Row ids: train rows 0..2172, test rows 2173..2865 (same as the wiki_data.mat reader); the release's string
ids are kept as side columns `text_id` / `image_id`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.readers.common import hashes, numeric_matrix, one_hot, require_file, tsv_rows
from bitrieve.data.readers.matfile import load_mat_v5
from bitrieve.data.source import Source
from bitrieve.data.types import DataError


def _read_list(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    txt, img, cat = [], [], []
    for where, parts in tsv_rows(path, 3, "<text id>\\t<image id>\\t<category>"):
        if not parts[2].strip().isdigit():
            raise DataError(f"{where}: category {parts[2]!r} is not a positive integer")
        txt.append(parts[0])
        img.append(parts[1])
        cat.append(int(parts[2]))
    return txt, img, np.array(cat, dtype=np.int64)


def read(path: str, **_: object) -> Source:
    root = Path(path)
    mat = require_file(root / "raw_features.mat",
                       "Wiki SVCL features, MATLAB v5 with I_tr/I_te (N,128), T_tr/T_te (N,10)")
    lists = {s: require_file(root / f"{s}set_txt_img_cat.list", f"Wiki {s} list: `<text id>\\t<image id>\\t<category>`")
             for s in ("train", "test")}
    cats = require_file(root / "categories.list", "Wiki class names, one per line, for category ids 1..10")
    m = load_mat_v5(mat)
    names = [c.strip() for c in cats.read_text().splitlines() if c.strip()]
    parts = {}
    for s, suf in (("train", "tr"), ("test", "te")):
        for key, width in ((f"I_{suf}", 128), (f"T_{suf}", 10)):
            if key not in m:
                raise DataError(f"{mat}: missing key '{key}' (expected (N, {width})); keys: "
                                f"{sorted(k for k in m if not k.startswith('__'))}")
            m[key] = numeric_matrix(m[key], mat, key, f"(N, {width}) features", finite=True)
            if m[key].shape[1] != width:
                raise DataError(f"{mat}: key '{key}' has shape {m[key].shape}, expected (N, {width})")
        txt, img, cat = _read_list(lists[s])
        n = m[f"I_{suf}"].shape[0]
        if not (len(cat) == n == m[f"T_{suf}"].shape[0]):
            raise DataError(f"Wiki {s}: row counts disagree: {lists[s].name} {len(cat)}, I_{suf} {n}, "
                            f"T_{suf} {m[f'T_{suf}'].shape[0]}")
        if cat.min() < 1 or cat.max() > len(names):
            raise DataError(f"{lists[s]}: category ids must lie in 1..{len(names)}")
        parts[s] = (m[f"I_{suf}"], m[f"T_{suf}"], one_hot(cat - 1, len(names)), txt, img)
    tr, te = parts["train"], parts["test"]
    n_tr, n_te = len(tr[3]), len(te[3])
    card = {"name": "wiki", "version": "wiki_top10cats (Rasiwasia et al. 2010), SVCL release raw_features.mat",
            "source": str(root), "sha256": hashes(mat, lists["train"], lists["test"], cats), "label_names": names,
            "features": {"image": "128-d SIFT bag-of-visual-words", "text": "10-d LDA topic proportions"}}
    return Source({"image": np.concatenate([tr[0], te[0]]).astype(np.float32),
                   "text": np.concatenate([tr[1], te[1]]).astype(np.float32)},
                  np.concatenate([tr[2], te[2]]), np.arange(n_tr + n_te, dtype=np.int64), card,
                  np.array(["train"] * n_tr + ["test"] * n_te),
                  {"text_id": np.array(tr[3] + te[3]), "image_id": np.array(tr[4] + te[4])})
