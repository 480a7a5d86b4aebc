"""On-disk layout of a binary index: raw ``.npy`` arrays (no pickles) + optional FAISS file + ``manifest.json``.

```
INDEX_DIR/
  manifest.json   schema, backend, bits, count, model hash, meta, per file: sha256, size, dtype, shape; and
                  manifest_sha256 over all of these (an edited field is detected like a changed file)
  codes.npy       (N, ceil(bits/64)) '<u8' packed codes (bitrieve.codes)
  ids.npy         (N,) int64 item ids, in database order
  faiss.index     only for faiss-ivf / faiss-hnsw (faiss.write_index_binary); flat indexes are rebuilt from codes
```
Writes are atomic: everything goes to a temporary sibling directory that is renamed into place. Loading verifies
the manifest's own checksum, then every file's sha256 before parsing it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bitrieve.atomic import RefusedToReplace, atomic_directory, check_replaceable
from bitrieve.errors import read_json_file
from bitrieve.errors import BinaryIndexError

from bitrieve.data.wiki import sha256_file  # noqa: E402  (one implementation for the package)

MANIFEST = "manifest.json"
SEAL = "manifest_sha256"
FORMAT = "bitrieve-binary-index"
SCHEMA = 1


def write_index_dir(out: str | Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any],
                    extra_files: dict[str, Callable[[Path], None]] | None = None) -> Path:
    """Write ``arrays`` as ``NAME.npy``, each ``extra_files[name](path)``, and the manifest; atomically replace ``out``.

    An existing ``out`` is replaced only if it is an empty directory or a bitrieve index (never another folder; the
    package's one rule, `bitrieve.atomic.check_replaceable`).
    """
    out = Path(out)
    try:
        check_replaceable(out, is_index_dir, "bitrieve index directory")
    except RefusedToReplace as e:
        raise BinaryIndexError(f"{e}") from None
    with atomic_directory(out, "tmp", is_ours=is_index_dir, what="bitrieve index directory") as tmp:
        files = {}
        for name, arr in arrays.items():
            path = tmp / f"{name}.npy"
            np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size,
                                "dtype": arr.dtype.str, "shape": list(arr.shape)}
        for name, writer in (extra_files or {}).items():
            path = tmp / name
            writer(path)
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest = {"format": FORMAT, "schema": SCHEMA, **manifest, "files": files}
        manifest[SEAL] = manifest_sha256(manifest)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
    return out


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's own fields (every key but the seal, as sorted compact JSON): an edited ``bits``,
    ``count``, ``backend``, model hash or file entry no longer matches."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def is_index_dir(path: str | Path) -> bool:
    """True if ``path`` holds a manifest.json of this package's index format."""
    m = Path(path) / MANIFEST
    try:
        return m.is_file() and json.loads(m.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    index_dir = Path(index_dir)
    path = index_dir / MANIFEST
    if not path.is_file():
        raise BinaryIndexError(f"{index_dir}: not a bitrieve index (no {MANIFEST})")
    manifest = read_json_file(path, BinaryIndexError, "rebuild the index")
    if manifest.get("format") != FORMAT:
        raise BinaryIndexError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("schema") != SCHEMA:
        raise BinaryIndexError(f"{path}: schema {manifest.get('schema')!r} is not supported (this bitrieve reads "
                               f"schema {SCHEMA})")
    if SEAL not in manifest:
        raise BinaryIndexError(f"{path}: no '{SEAL}' (written by an older bitrieve, or edited): its fields cannot be "
                               "verified; rebuild the index with `bitrieve index build`")
    if manifest_sha256(manifest) != manifest[SEAL]:
        raise BinaryIndexError(f"{path}: the manifest's fields do not match its '{SEAL}': it was edited or damaged "
                               "after the index was built (e.g. 'bits' or 'count' changed); rebuild the index")
    for key in ("backend", "bits", "count", "files"):
        if key not in manifest:
            raise BinaryIndexError(f"{path}: missing key '{key}'")
    return manifest


def verify_file(index_dir: Path, name: str, manifest: dict[str, Any]) -> Path:
    """The path of ``name`` after checking it exists and its sha256 matches the manifest."""
    entry = manifest["files"].get(name)
    if entry is None:
        raise BinaryIndexError(f"{index_dir / MANIFEST}: no entry for '{name}'")
    path = index_dir / name
    if not path.is_file():
        raise BinaryIndexError(f"{path}: missing (listed in {MANIFEST})")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise BinaryIndexError(f"{path}: checksum mismatch (sha256 {digest[:16]}..., manifest says "
                               f"{entry['sha256'][:16]}...): the file is corrupted or was changed after the index "
                               "was built; rebuild the index")
    return path


def load_array(index_dir: Path, name: str, manifest: dict[str, Any], mmap: bool = False) -> np.ndarray:
    """Load ``NAME.npy`` (checksum verified, no pickles) and check dtype/shape against the manifest."""
    fname = f"{name}.npy"
    path = verify_file(index_dir, fname, manifest)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as e:
        raise BinaryIndexError(f"{path}: not a plain .npy array ({e})") from None
    entry = manifest["files"][fname]
    if arr.dtype.str != entry["dtype"] or list(arr.shape) != entry["shape"]:
        raise BinaryIndexError(f"{path}: holds {arr.dtype.str} {list(arr.shape)}, manifest says "
                               f"{entry['dtype']} {entry['shape']}")
    return arr
