"""MNIST IDX files (LeCun et al., Proc. IEEE 1998): `t10k-images-idx3-ubyte(.gz)` + `t10k-labels-idx1-ubyte(.gz)`,
optionally `train-*` too. IDX3: magic 2051, big-endian int32 n, rows, cols, then uint8 pixels; IDX1: magic 2049, n,
then uint8 labels. Ids: train rows 0..59999 when present, test rows follow (0..9999 when only the test set exists).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, one_hot, reading
from bitrieve.data.source import Source
from bitrieve.data.types import DataError


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _idx(path: Path, magic: int) -> np.ndarray:
    with reading(path, "an MNIST IDX file (gzip-compressed when named .gz)"):
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    if len(raw) < 4 + 4 * (magic & 0xFF):
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header (truncated file?)")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise DataError(f"{path}: IDX magic {got}, expected {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def read(path: str, **_: object) -> Source:
    root = Path(path)
    parts, files, official = [], [], []
    for s, stem in (("train", "train"), ("test", "t10k")):
        img, lab = _find(root, f"{stem}-images-idx3-ubyte"), _find(root, f"{stem}-labels-idx1-ubyte")
        if img is None and lab is None:
            continue
        if img is None or lab is None:
            raise DataError(f"{root}: MNIST {s} needs both {stem}-images-idx3-ubyte(.gz) (images, IDX3) and "
                            f"{stem}-labels-idx1-ubyte(.gz) (labels, IDX1); one is missing")
        x, y = _idx(img, 2051), _idx(lab, 2049)
        if len(x) != len(y):
            raise DataError(f"MNIST {s}: {len(x)} images but {len(y)} labels")
        parts.append((x, y))
        files += [img, lab]
        official += [s] * len(y)
    if not parts:
        raise DataError(f"{root}: no MNIST files (expected t10k-images-idx3-ubyte.gz + t10k-labels-idx1-ubyte.gz)")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    card = {"name": "mnist" if "train" in official else "mnist-test", "version": "MNIST original IDX files"
            + ("" if "train" in official else ", test set only (10,000)"), "source": str(root),
            "sha256": hashes(*files), "label_names": [str(i) for i in range(10)],
            "citation": "LeCun, Bottou, Bengio, Haffner, Proc. IEEE 1998"}
    img = ImageSource(arrays=x, description="MNIST 28x28 grey-scale")
    return Source({"image": img}, one_hot(y, 10), np.arange(len(y), dtype=np.int64), card, np.array(official))
