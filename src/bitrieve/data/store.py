"""The canonical store: one directory per converted dataset; everything downstream reads only this.

Layout (format 1)::

    DIR/card.json            name, version, source files + sha256, protocol + split seed, counts, feature widths...
    DIR/<split>.npz          per split: one key per modality (e.g. ``image``, ``text``), ``labels`` (N, C) uint8,
                             ``ids`` (N,) int64, and side columns as ``extra.<name>`` (e.g. ``extra.text_lengths``)
    DIR/split_indices.npz    per split: the row indices into the source release the protocol drew (int64)
    DIR/vocab.json           only for token-id text: the vocabulary (index = token id)

No pickles anywhere: every array is plain numeric, ``np.load(allow_pickle=False)`` reads them. Writing is atomic: the
whole directory is built under a temporary name next to DIR and renamed into place only when complete, so an
interrupted conversion never leaves a directory that has a ``card.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bitrieve.atomic import RefusedToReplace, atomic_directory, check_replaceable, check_writable, default_mode, \
    write_text_atomic
from bitrieve.data.extras import SplitWithExtras, extras_of
from bitrieve.data.types import CrossModalData, DataError, Split
from bitrieve.data.wiki import sha256_file
from bitrieve.errors import read_json_file

STORE_FORMAT = 1
EXTRA_PREFIX = "extra."
_RESERVED = ("labels", "ids")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write JSON through a temporary file in the same directory, then rename (atomic on POSIX)."""
    write_text_atomic(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def _split_arrays(split: Split) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for m, a in split.inputs.items():
        if m in _RESERVED or m.startswith(EXTRA_PREFIX):
            raise DataError(f"modality name '{m}' is reserved in the store")
        arrays[m] = np.ascontiguousarray(a)
    arrays["labels"] = np.ascontiguousarray(split.labels, dtype=np.uint8)
    arrays["ids"] = np.ascontiguousarray(split.ids, dtype=np.int64)
    for k, a in extras_of(split).items():
        arrays[EXTRA_PREFIX + k] = np.ascontiguousarray(a)
    for k, a in arrays.items():
        if a.dtype == object:
            raise DataError(f"split array '{k}' has dtype object; the store holds numeric arrays only")
    return arrays


def is_store(path: str | Path) -> bool:
    """True if ``path`` is a canonical store bitrieve wrote (a card.json with this package's ``store_format``)."""
    card = Path(path) / "card.json"
    try:
        return card.is_file() and isinstance(json.loads(card.read_text()).get("store_format"), int)
    except (OSError, ValueError, AttributeError):
        return False


def check_store_target(path: str | Path, overwrite: bool) -> None:
    """Fail early (before any decoding or extraction) if ``path`` cannot receive a store: it exists and overwriting
    was not asked for, or overwriting would replace something that is not a store, or its parent is not writable."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise DataError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
        try:
            check_replaceable(path, is_store, "canonical store")
        except RefusedToReplace as e:
            raise DataError(str(e)) from None
    check_writable(path.parent, "canonical store", error=DataError)


def save_store(data: CrossModalData, path: str | Path, *, split_indices: dict[str, np.ndarray] | None = None,
               sidecars: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``data`` as a canonical store at ``path`` (atomic). Returns the path.

    ``split_indices``: split -> row indices into the source release (stored in split_indices.npz);
    ``sidecars``: file name -> JSON object (e.g. ``{"vocab.json": [...]}``).
    """
    path = Path(path)
    check_store_target(path, overwrite)
    with atomic_directory(path, "partial", is_ours=is_store, what="canonical store") as tmp:
        # an interrupted conversion leaves only .NAME.partial-* (removed by the next successful write of NAME)
        card = dict(data.card)
        files: dict[str, str] = {}
        for name, split in data.splits.items():
            f = tmp / f"{name}.npz"
            np.savez(f, **_split_arrays(split))
            files[f.name] = sha256_file(f)
        if split_indices is not None:
            f = tmp / "split_indices.npz"
            np.savez(f, **{k: np.asarray(v, dtype=np.int64) for k, v in split_indices.items()})
            files[f.name] = sha256_file(f)
        for fname, obj in (sidecars or {}).items():
            write_json_atomic(obj, tmp / fname)
            files[fname] = sha256_file(tmp / fname)
        first = next(iter(data.splits.values()))
        card["store_format"] = STORE_FORMAT
        card["counts"] = {k: len(v) for k, v in data.splits.items()}
        card["feature_widths"] = {m: int(np.prod(a.shape[1:])) for m, a in first.inputs.items()}
        card["input_shapes"] = {m: list(a.shape[1:]) for m, a in first.inputs.items()}
        card["input_dtypes"] = {m: str(a.dtype) for m, a in first.inputs.items()}
        card["num_labels"] = int(first.labels.shape[1])
        card["extras"] = sorted(extras_of(first))
        card["store_files_sha256"] = files
        write_json_atomic(card, tmp / "card.json")  # last: a directory with card.json is complete
        for f in tmp.iterdir():  # np.savez honours the umask already; make every file alike
            f.chmod(default_mode())
    return path


def read_card(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    card_file = path / "card.json"
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a canonical store made by `bitrieve data convert`)")
    if not card_file.is_file():
        raise DataError(f"{path}: no card.json, so not a complete canonical store (an interrupted conversion leaves "
                        "only a hidden '.NAME.partial-*' directory; run `bitrieve data convert` again)")
    card = read_json_file(card_file, DataError, "the store is damaged, convert the release again")
    if card.get("store_format") != STORE_FORMAT:
        raise DataError(f"{card_file}: store_format {card.get('store_format')!r}, this bitrieve reads {STORE_FORMAT}")
    return card


def load_split_indices(path: str | Path) -> dict[str, np.ndarray]:
    f = Path(path) / "split_indices.npz"
    if not f.is_file():
        return {}
    with np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def verify_store(path: str | Path, names: tuple[str, ...] | None = None) -> list[str]:
    """Recompute the sha256 of the store files listed in card.json (all, or only ``names``); DataError naming the
    first that is missing or differs. Returns the names verified."""
    path = Path(path)
    listed = read_card(path).get("store_files_sha256")
    if not isinstance(listed, dict) or not listed:
        raise DataError(f"{path / 'card.json'}: no 'store_files_sha256' map, so the store's files cannot be verified "
                        "(convert the release again)")
    for name in names or tuple(listed):
        digest = listed.get(name)
        if digest is None:
            raise DataError(f"{path / 'card.json'}: 'store_files_sha256' has no entry for {name}")
        if not (path / name).is_file():
            raise DataError(f"{path}: file {name} listed in card.json is missing")
        if sha256_file(path / name) != digest:
            raise DataError(f"{path / name}: sha256 differs from card.json: the file changed after conversion (disk "
                            "corruption or an edit), so it cannot be trusted; convert the release again")
    return list(names or listed)


def read_npz(f: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Arrays of a store ``.npz`` (all, or ``keys``) without pickles; a damaged file or an object array is a
    DataError naming the file and key."""
    import zipfile

    try:
        with np.load(f, allow_pickle=False) as z:
            out = {}
            for k in keys or z.files:
                if k not in z.files:
                    raise DataError(f"{f}: missing key '{k}' (keys: {z.files})")
                try:
                    out[k] = z[k]
                except ValueError as e:  # "Object arrays cannot be loaded when allow_pickle=False"
                    raise DataError(f"{f}: key '{k}' cannot be read without unpickling ({e}); a store holds plain "
                                    "numeric/unicode arrays only") from None
            return out
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise DataError(f"{f}: not a readable .npz archive ({type(e).__name__}: {e}); the store is damaged, "
                        "convert the release again") from None


def load_store(path: str | Path, splits: tuple[str, ...] | None = None, verify: bool = True) -> CrossModalData:
    """Read a canonical store into a validated `CrossModalData` (splits with side columns are `SplitWithExtras`).

    ``verify=True`` (default) first checks the sha256 of the split files read against card.json, so an array
    changed after conversion is an error, not a silently different result (cost: reading the files once more; see
    docs/guarantees.md for the measured time).
    """
    path = Path(path)
    card = read_card(path)
    names = splits or tuple(card["counts"])
    if verify:
        verify_store(path, tuple(f"{n}.npz" for n in names))
    out: dict[str, Split] = {}
    for name in names:
        f = path / f"{name}.npz"
        if not f.is_file():
            raise DataError(f"{path}: split file {f.name} missing (card lists splits {list(card['counts'])})")
        z = read_npz(f)
        for key in _RESERVED:
            if key not in z:
                raise DataError(f"{f}: missing key '{key}' (keys: {sorted(z)})")
        inputs = {k: a for k, a in z.items() if k not in _RESERVED and not k.startswith(EXTRA_PREFIX)}
        extras = {k[len(EXTRA_PREFIX):]: a for k, a in z.items() if k.startswith(EXTRA_PREFIX)}
        split = SplitWithExtras(inputs, z["labels"], z["ids"], extras) if extras else Split(inputs, z["labels"],
                                                                                             z["ids"])
        if len(split) != card["counts"].get(name):
            raise DataError(f"{f}: {len(split)} rows, card.json says {card['counts'].get(name)}")
        out[name] = split
    return CrossModalData(out, card)


def read_sidecar(path: str | Path, name: str) -> Any:
    f = Path(path) / name
    if not f.is_file():
        raise DataError(f"{path}: sidecar {name} missing")
    return read_json_file(f, DataError, expect_object=False)
