"""Resumable, batched feature extraction over an `ImageSource`.

Work is cut into chunks of ``chunk`` images; each finished chunk is written atomically as
``work_dir/<fingerprint>/chunk_NNNNN.npy``, and a rerun skips finished chunks, so an interrupted run continues where
it stopped. The fingerprint covers the extractor description and the list of images, so a changed model or dataset
never reuses old chunks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bitrieve.atomic import write_with_atomic
from bitrieve.data.images import ImageSource
from bitrieve.data.types import DataError


def _fingerprint(source: ImageSource, extractor) -> str:
    h = hashlib.sha256(json.dumps(extractor.describe(), sort_keys=True).encode())
    if source.refs is not None:
        h.update("\n".join(source.refs).encode())
    else:
        h.update(str(len(source)).encode())
        first = np.asarray(source.arrays[0]) if len(source) else np.zeros(0)
        h.update(first.tobytes())
    return h.hexdigest()[:16]


def _load_chunk(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise DataError(f"{path}: damaged feature chunk ({e}); delete it (or the work directory) and run again") \
            from None


def extract_images(source: ImageSource, extractor, work_dir: str | Path | None = None, batch_size: int = 64,
                   chunk: int = 2048, progress: bool = True) -> np.ndarray:
    """Features (N, dim) float32 for every image of ``source``, in order."""
    from bitrieve.console import progress as progress_bar

    n = len(source)
    cleanup = work_dir is None
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="bitrieve-features-"))
    wdir = work / _fingerprint(source, extractor)
    wdir.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, n, chunk))
    done = sum(min(chunk, n - s) for i, s in enumerate(starts) if (wdir / f"chunk_{i:05d}.npy").is_file())
    bar = progress_bar(total=n, initial=done, desc=f"features {extractor.name}", unit="img", enabled=progress)
    for ci, s in enumerate(starts):
        out = wdir / f"chunk_{ci:05d}.npy"
        if out.is_file():
            continue
        feats = []
        for b in range(s, min(s + chunk, n), batch_size):
            rows = range(b, min(b + batch_size, s + chunk, n))
            feats.append(extractor([source.load(i) for i in rows]))
            bar.update(len(rows))
        arr = np.concatenate(feats).astype(np.float32)
        write_with_atomic(out, lambda tmp: np.save(tmp, arr, allow_pickle=False))  # umask, temp + rename
    bar.close()
    result = np.concatenate([_load_chunk(wdir / f"chunk_{i:05d}.npy") for i in range(len(starts))]) \
        if starts else np.zeros((0, extractor.dim), np.float32)
    if cleanup:
        shutil.rmtree(work, ignore_errors=True)
    return result
