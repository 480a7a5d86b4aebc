"""Small helpers shared by readers: file checks that name what is missing, paths that must stay inside a
dataset's root, format errors turned into one line naming the file, one-hot labels, hashing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from bitrieve.data.types import DataError
from bitrieve.data.wiki import sha256_file
from bitrieve.errors import reading as _reading


def require_file(path: Path, what: str) -> Path:
    """``path`` must exist; otherwise a DataError naming the file and what it should contain."""
    if not path.is_file():
        raise DataError(f"missing file {path}: {what}")
    return path


def inside_root(root: Path, ref: str, where: str) -> Path:
    """``root / ref`` after checking that it stays inside ``root``: no absolute path, no ``..`` that climbs out, no
    symbolic link that resolves outside (a label file or annotation naming ``../../home/x/.ssh/id_rsa`` must not be
    read into a store). ``where`` names the file and line that gave ``ref``."""
    if not ref or os.path.isabs(ref) or Path(ref).is_absolute():
        raise DataError(f"{where}: image path {ref!r} must be relative to the dataset root {root}")
    real_root = root.resolve()
    target = (root / ref).resolve()
    if target != real_root and real_root not in target.parents:
        raise DataError(f"{where}: image path {ref!r} resolves to {target}, outside the dataset root {real_root} "
                        "('..' or a symbolic link that leaves the root); refusing to read it")
    return root / ref


def text_only_note(images: str | None) -> dict:
    """Card fields of a caption release converted without ``--images``: the store holds text only, and says so
    (the conversion prints the note too)."""
    if images:
        return {}
    return {"modalities_missing": ["image"],
            "notes": ["text-only store: no --images DIR was given, so it holds the captions without any image "
                      "input (cross-modal methods cannot train on it; pass --images to include the photos)"]}


def reading(path: Path, what: str):
    """Context manager: a damaged file's library error becomes one DataError naming ``path`` (errors.reading)."""
    return _reading(path, what, DataError)


def numeric_matrix(a, path: Path, key: str, what: str, finite: bool = False) -> "np.ndarray":
    """``a`` as a numeric (N, D) array, or a DataError naming the file and key (3-d arrays, strings, cells...;
    with ``finite``, NaN/inf values, counted)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: key '{key}' ({what}) holds {a.dtype} values, expected numbers")
    if a.ndim != 2:
        raise DataError(f"{path}: key '{key}' ({what}) has shape {a.shape}, expected a 2-d (N, D) array")
    if finite and a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            raise DataError(f"{path}: key '{key}' holds {int(bad.sum())} NaN/inf values in {int(bad.any(1).sum())} "
                            f"of {len(a)} rows, expected finite {what}")
    return a


def tsv_rows(path: Path, fields: int, form: str) -> Iterator[tuple[str, list[str]]]:
    """``(where, fields)`` per non-blank line of a tab-separated file (``where`` = ``path:line``); a line with
    another number of fields is a DataError showing the expected ``form``."""
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != fields:
            raise DataError(f"{path}:{i + 1}: expected `{form}`, got {line!r}")
        yield f"{path}:{i + 1}", parts


def one_hot(classes: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(classes), n), dtype=np.uint8)
    out[np.arange(len(classes)), classes] = 1
    return out


def hashes(*paths: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in paths}
