"""Wikipedia cross-modal benchmark (Rasiwasia et al., ACM MM 2010), the SCRATCH/MCTD `wiki_data.mat` release.

MATLAB v7.3 (HDF5) file, arrays stored transposed (feature-major): I_tr (128, 2173) SIFT BoVW, T_tr (10, 2173) LDA
topics, L_tr (10, 2173) one-hot classes, and the same with `_te` for the 693 test pairs. Protocol (standard in the
cross-modal hashing literature): the 693 test pairs are the queries; the 2,173 training pairs are both the training
set and the retrieval database; relevance = same class.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bitrieve.data.types import CrossModalData, DataError, Split

EMBEDDED_WIKI = Path(__file__).parent / "embedded" / "wiki" / "wiki_data.mat"
WIKI_CLASSES = ["art", "biology", "geography", "history", "literature", "media", "music", "royalty", "sport", "warfare"]
_KEYS = {"I_tr": 128, "I_te": 128, "T_tr": 10, "T_te": 10, "L_tr": 10, "L_te": 10}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_wiki_mat(path: str | Path = EMBEDDED_WIKI) -> CrossModalData:
    """Read `wiki_data.mat`; splits: train (= retrieval, 2,173 rows) and query (693 rows)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the Wiki benchmark `wiki_data.mat`, MATLAB v7.3)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not an HDF5 / MATLAB v7.3 file ({e}); a v5 .mat goes through the "
                        "`raw_features.mat` reader") from None
    with f:
        arrays = {}
        for key, width in _KEYS.items():
            if key not in f:
                raise DataError(f"{path}: missing key '{key}' (expected {width} x N); keys present: {sorted(f)}")
            ds = f[key]
            if getattr(ds, "ndim", None) != 2 or ds.dtype.kind not in "biuf":
                raise DataError(f"{path}: key '{key}' holds {getattr(ds, 'dtype', 'a group')} "
                                f"{getattr(ds, 'shape', '')}, expected a numeric ({width}, N) array")
            try:
                a = np.asarray(ds, dtype=np.float64).T  # stored feature-major
            except OSError as e:  # a damaged chunk
                raise DataError(f"{path}: key '{key}' cannot be read ({e}); the file is truncated or corrupt") from None
            if a.shape[1] != width:
                raise DataError(f"{path}: key '{key}' has shape {a.shape[::-1]} stored, expected ({width}, N)")
            bad_rows = int((~np.isfinite(a)).any(1).sum())
            if bad_rows:  # docs/datasets.md: NaN/inf are reported with the file and the number of rows
                raise DataError(f"{path}: key '{key}' has NaN/inf values in {bad_rows} of {a.shape[0]} rows")
            arrays[key] = a
    splits = {}
    offset = 0
    for name, suffix in (("train", "tr"), ("query", "te")):
        img, txt, lab = arrays[f"I_{suffix}"], arrays[f"T_{suffix}"], arrays[f"L_{suffix}"]
        if not (img.shape[0] == txt.shape[0] == lab.shape[0]):
            raise DataError(f"{path}: split '{name}' row counts disagree: image {img.shape[0]}, text {txt.shape[0]}, "
                            f"labels {lab.shape[0]}")
        n = img.shape[0]
        splits[name] = Split({"image": img.astype(np.float32), "text": txt.astype(np.float32)},
                             lab.astype(np.uint8), np.arange(offset, offset + n, dtype=np.int64))
        offset += n
    splits["retrieval"] = splits["train"]
    card = {
        "name": "wiki",
        "version": "wiki_top10cats (Rasiwasia et al. 2010), SCRATCH wiki_data.mat release",
        "source": str(path.name),
        "sha256": {path.name: sha256_file(path)},
        "protocol": {"name": "wiki", "citation": "Rasiwasia et al., ACM MM 2010",
                     "description": "the release's 693 test pairs = query; its 2,173 train pairs = train = retrieval"},
        "split_seed": None,
        "label_names": WIKI_CLASSES,
        "features": {"image": "128-d SIFT bag-of-visual-words", "text": "10-d LDA topic proportions"},
        "counts": {k: len(v) for k, v in splits.items()},
    }
    return CrossModalData(splits, card)
