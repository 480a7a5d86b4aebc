"""Small helpers shared by readers: file checks that name what is missing, one-hot labels, hashing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.types import DataError
from bitrieve.data.wiki import sha256_file


def require_file(path: Path, what: str) -> Path:
    """``path`` must exist; otherwise a DataError naming the file and what it should contain."""
    if not path.is_file():
        raise DataError(f"missing file {path}: {what}")
    return path


def one_hot(classes: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(classes), n), dtype=np.uint8)
    out[np.arange(len(classes)), classes] = 1
    return out


def hashes(*paths: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in paths}
