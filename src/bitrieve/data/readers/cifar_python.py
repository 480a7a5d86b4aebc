"""CIFAR-10 python batches (`cifar-10-batches-py/`: data_batch_1..5, test_batch; Krizhevsky 2009).

Each batch is a python-2 pickle of a dict with b"data" uint8 (10000, 3072) (RGB planes, row-major 32x32), b"labels"
(list of 10,000 ints 0..9), b"filenames"; `batches.meta` holds b"label_names". Read with the restricted unpickler
(data/safe_pickle.py), never plain pickle. Ids: train rows 0..49999 in batch order, test 50000..59999.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.cifar_jpg import CIFAR10_CLASSES
from bitrieve.data.readers.common import hashes, one_hot, require_file
from bitrieve.data.safe_pickle import safe_load
from bitrieve.data.source import Source
from bitrieve.data.types import DataError


def _batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = safe_load(path, encoding="bytes")
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"{path}: expected a dict with keys b'data' (10000, 3072) and b'labels'")
    data, labels = np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: b'data' has shape {data.shape}, b'labels' {labels.shape}; expected (N, 3072), (N,)")
    return data.reshape(-1, 3, 32, 32), labels


def read(path: str, **_: object) -> Source:
    root = Path(path)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    files = [require_file(root / f"data_batch_{i}", "CIFAR-10 python training batch (pickled dict b'data', "
                          "b'labels')") for i in range(1, 6)]
    files.append(require_file(root / "test_batch", "CIFAR-10 python test batch"))
    parts = [_batch(f) for f in files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    n_train = sum(len(p[1]) for p in parts[:5])
    card = {"name": "cifar10", "version": "CIFAR-10 python batches (original pixels)", "source": str(root),
            "sha256": hashes(*files), "label_names": CIFAR10_CLASSES,
            "citation": "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report 2009"}
    img = ImageSource(arrays=x.transpose(0, 2, 3, 1), description="CIFAR-10 original pixels, 32x32 RGB")
    return Source({"image": img}, one_hot(y, 10), np.arange(len(y), dtype=np.int64), card,
                  np.array(["train"] * n_train + ["test"] * (len(y) - n_train)))
