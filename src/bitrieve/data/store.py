"""The canonical store: one directory per converted dataset; everything downstream reads only this.

Layout (format 2, written since issue 21)::

    DIR/card.json            name, version, source files + sha256, protocol + split seed, counts, feature widths...
    DIR/<split>/<key>.npy    per split, one uncompressed array per key: each modality (``image.npy``, ``text.npy``),
                             ``labels.npy`` (N, C) uint8, ``ids.npy`` (N,) int64, side columns ``extra.<name>.npy``
    DIR/split_indices.npz    per split: the row indices into the source release the protocol drew (int64)
    DIR/vocab.json           only for token-id text: the vocabulary (index = token id)

Format 1 (still read): one ``DIR/<split>.npz`` per split holding the same keys.

Reading a format-2 store is lazy: ``load_store`` opens ``ids`` and ``labels`` of each split it is asked for, and a
modality or side column only when it is first used, memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``);
each file is checked against its sha256 in card.json just before its first use, once per process (`verify_file`).
A 2-d ``uint8`` modality (binary tags / bag-of-words) is stored as ``uint8`` and handed out as float32
(`WidenedArray`: slices are widened, so a batch is widened, never the whole array); card.json lists such modalities
under ``widened_on_load``. A reader never writes into a store.

No pickles anywhere: every array is plain numeric (or fixed-width unicode), ``np.load(allow_pickle=False)`` reads
them. Writing is atomic: the whole directory is built under a temporary name next to DIR and renamed into place only
when complete, so an interrupted conversion never leaves a directory that has a ``card.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bitrieve.atomic import RefusedToReplace, atomic_directory, check_replaceable, check_writable, default_mode, \
    write_text_atomic
from bitrieve.data.extras import SplitWithExtras, extras_of
from bitrieve.data.types import CrossModalData, DataError, Split
from bitrieve.data.wiki import sha256_file
from bitrieve.errors import read_json_file

STORE_FORMAT = 2
READABLE_FORMATS = (1, 2)
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


STREAM_BLOCK_BYTES = 32 << 20  # source rows read per step when a split array is written by rows


class RowSelection:
    """The rows ``rows`` (in that order) of a row-readable ``source`` as a split array that is written by streaming,
    never held whole: ``source`` is an in-memory array, or a reader's lazy array (``read_rows(start, stop)``, e.g. a
    MATLAB v7.3 matrix read through h5py, readers/matfile.py). ``dtype``: the stored dtype. ``what`` names the
    source (file and key) in errors."""

    def __init__(self, source: Any, rows: np.ndarray, dtype: Any, what: str) -> None:
        self.source, self.rows, self.what = source, np.asarray(rows, dtype=np.int64), what
        self.dtype = np.dtype(dtype)
        self.shape = (len(self.rows),) + tuple(source.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        src = self.source
        return src.read_rows(start, stop) if hasattr(src, "read_rows") else src[start:stop]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        stream_selections([(self, _ArrayRows(out))], self.what)
        return out if dtype is None else out.astype(dtype, copy=False)


class _ArrayRows:
    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def write_rows(self, positions: np.ndarray, rows: np.ndarray) -> None:
        self.out[positions] = rows


class NpyRowWriter:
    """A ``.npy`` file of a known shape and dtype written row by row at any position (``os.pwrite``): the memory
    used is the rows being written, not the file (a memory map's written pages would count as resident)."""

    def __init__(self, f: Path, shape: tuple[int, ...], dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with open(f, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                      "fortran_order": False, "shape": tuple(shape)})
            self.offset = fh.tell()
            fh.truncate(self.offset + self.row_bytes * int(shape[0]))
        self.fd = os.open(f, os.O_WRONLY)

    def write_rows(self, positions: np.ndarray, rows: np.ndarray) -> None:
        if not len(positions):
            return
        order = np.argsort(positions, kind="stable")
        pos = positions[order]
        data = np.ascontiguousarray(rows[order], dtype=self.dtype)
        breaks = np.concatenate(([0], np.flatnonzero(np.diff(pos) != 1) + 1, [len(pos)]))
        for a, b in zip(breaks[:-1], breaks[1:]):  # one write per run of consecutive positions
            buf = memoryview(data[a:b]).cast("B")
            at = self.offset + int(pos[a]) * self.row_bytes
            while buf:
                n = os.pwrite(self.fd, buf, at)
                buf, at = buf[n:], at + n

    def close(self) -> None:
        os.close(self.fd)


def stream_selections(targets: list[tuple[RowSelection, NpyRowWriter]], name: str = "<dataset>") -> None:
    """Write every ``RowSelection`` of one source in one pass over the source's rows, block by block: each block is
    read once and its rows go to every split that drew them. Float rows are checked to be finite on the way."""
    sel0 = targets[0][0]
    n_src = int(sel0.source.shape[0])
    row_bytes = max(1, int(np.prod(sel0.source.shape[1:], dtype=np.int64)) * max(sel0.dtype.itemsize, 4))
    block = max(1, STREAM_BLOCK_BYTES // row_bytes)
    plans = []
    for sel, w in targets:
        order = np.argsort(sel.rows, kind="stable")
        plans.append((sel, w, order, sel.rows[order]))
    for start in range(0, n_src, block):
        stop = min(start + block, n_src)
        parts = [(sel, w, order[i0:i1], sorted_rows[i0:i1] - start) for sel, w, order, sorted_rows in plans
                 for i0, i1 in [(np.searchsorted(sorted_rows, start), np.searchsorted(sorted_rows, stop))] if i1 > i0]
        if not parts:
            continue
        chunk = sel0.read_rows(start, stop)
        for sel, w, pos, local in parts:
            rows = np.asarray(chunk[local], dtype=sel.dtype)
            if rows.dtype.kind == "f":
                bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(1)
                if bad.any():
                    first = int(start + local[np.flatnonzero(bad)[0]])
                    raise DataError(f"{name}: {sel.what} has NaN/inf values (first in source row {first}); the "
                                    "release is damaged or not features")
            w.write_rows(pos, rows)


def _split_arrays(split: Split, narrow: bool = True) -> dict[str, Any]:
    """The arrays of one split file by key; ``narrow``: binary tags of a loaded store (`WidenedArray`) as stored
    (uint8), else as methods see them (float32, the format-1 layout)."""
    arrays: dict[str, Any] = {}
    for m, a in split.inputs.items():
        if m in _RESERVED or m.startswith(EXTRA_PREFIX):
            raise DataError(f"modality name '{m}' is reserved in the store")
        if isinstance(a, WidenedArray) and narrow:
            a = a.raw
        arrays[m] = a if isinstance(a, RowSelection) else np.ascontiguousarray(a)
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


def foreign_files(path: str | Path) -> list[str]:
    """Files inside a store that the store does not list (its card.json's ``store_files_sha256``): a user's own file
    put there, which ``--overwrite`` must not delete."""
    path = Path(path)
    try:
        listed = _listed(path)
    except DataError:  # not a store this bitrieve reads: check_replaceable decides about it
        return []
    return sorted(str(f.relative_to(path)) for f in path.rglob("*")
                  if f.is_file() and f.name != "card.json" and str(f.relative_to(path)) not in listed)


def is_store_alone(path: str | Path) -> bool:
    """A store bitrieve wrote and nothing else: what ``--overwrite`` may replace."""
    return is_store(path) and not foreign_files(path)


def check_store_target(path: str | Path, overwrite: bool) -> None:
    """Fail early (before any decoding or extraction) if ``path`` cannot receive a store: it exists and overwriting
    was not asked for, or overwriting would replace something that is not a store, or its parent is not writable."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise DataError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
        extra = foreign_files(path) if is_store(path) else []
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise DataError(f"{path}: holds files that are not part of the store ({shown}); refusing to delete them "
                            "with --overwrite: move them out first")
        try:
            check_replaceable(path, is_store, "canonical store")
        except RefusedToReplace as e:
            raise DataError(str(e)) from None
    check_writable(path.parent, "canonical store", error=DataError)


def widened_modalities(shapes: dict[str, tuple[tuple[int, ...], Any]]) -> list[str]:
    """Modalities a format-2 store keeps narrow and hands out as float32: 2-d ``uint8`` arrays (binary tags,
    bag-of-words); raw pixels (uint8, N x C x H x W) stay uint8."""
    return sorted(m for m, (tail, dtype) in shapes.items() if len(tail) == 1 and np.dtype(dtype) == np.uint8)


class StoreWriter:
    """Writes the split arrays of a format-2 store into the (temporary) directory ``tmp``: whole arrays with `put`,
    or row by row into a memory-mapped ``.npy`` made by `create` (streaming conversion, data/convert.py). `finish`
    hashes every file and writes card.json last."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = Path(tmp)
        self.keys: dict[str, list[str]] = {}
        self.shapes: dict[str, dict[str, tuple[tuple[int, ...], np.dtype]]] = {}

    def _path(self, split: str, key: str) -> Path:
        if split not in self.keys:
            (self.tmp / split).mkdir()
            self.keys[split], self.shapes[split] = [], {}
        if key in self.keys[split]:
            raise DataError(f"split '{split}': key '{key}' written twice")
        self.keys[split].append(key)
        return self.tmp / split / f"{key}.npy"

    def rows_writer(self, split: str, key: str, shape: tuple[int, ...], dtype: Any) -> NpyRowWriter:
        """A `NpyRowWriter` for ``split/key.npy`` (close it when written)."""
        f = self._path(split, key)
        self.shapes[split][key] = (tuple(shape), np.dtype(dtype))
        return NpyRowWriter(f, tuple(shape), dtype)

    def put(self, split: str, key: str, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        if a.dtype == object:
            raise DataError(f"split array '{key}' has dtype object; the store holds numeric arrays only")
        np.save(self._path(split, key), a, allow_pickle=False)
        self.shapes[split][key] = (tuple(a.shape), a.dtype)

    def create(self, split: str, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable memory map of ``split/key.npy`` with ``shape``; fill it, then drop the reference (or `del`)."""
        f = self._path(split, key)
        self.shapes[split][key] = (tuple(shape), np.dtype(dtype))
        if int(np.prod(shape)) == 0:
            np.save(f, np.zeros(shape, dtype), allow_pickle=False)
            return np.zeros(shape, dtype)
        return np.lib.format.open_memmap(f, mode="w+", dtype=dtype, shape=tuple(shape))

    def finish(self, card: dict[str, Any], split_indices: dict[str, np.ndarray] | None = None,
               sidecars: dict[str, Any] | None = None) -> None:
        files: dict[str, str] = {}
        for split, keys in self.keys.items():
            for k in keys:
                files[f"{split}/{k}.npy"] = sha256_file(self.tmp / split / f"{k}.npy")
        if split_indices is not None:
            f = self.tmp / "split_indices.npz"
            np.savez(f, **{k: np.asarray(v, dtype=np.int64) for k, v in split_indices.items()})
            files[f.name] = sha256_file(f)
        for fname, obj in (sidecars or {}).items():
            write_json_atomic(obj, self.tmp / fname)
            files[fname] = sha256_file(self.tmp / fname)
        first = next(iter(self.shapes.values()))
        mods = {k: (shape[1:], dtype) for k, (shape, dtype) in first.items()
                if k not in _RESERVED and not k.startswith(EXTRA_PREFIX)}
        widened = widened_modalities(mods)
        card = dict(card)
        card["store_format"] = STORE_FORMAT
        card["counts"] = {s: int(sh["ids"][0][0]) for s, sh in self.shapes.items()}
        card["feature_widths"] = {m: int(np.prod(t)) for m, (t, _) in mods.items()}
        card["input_shapes"] = {m: list(t) for m, (t, _) in mods.items()}
        card["input_dtypes"] = {m: "float32" if m in widened else str(d) for m, (_, d) in mods.items()}
        card["stored_dtypes"] = {m: str(d) for m, (_, d) in mods.items()}
        card["widened_on_load"] = widened
        card["num_labels"] = int(first["labels"][0][1])
        card["extras"] = sorted(k[len(EXTRA_PREFIX):] for k in first if k.startswith(EXTRA_PREFIX))
        card["split_files"] = {s: [f"{s}/{k}.npy" for k in keys] for s, keys in self.keys.items()}
        card["store_files_sha256"] = files
        write_json_atomic(card, self.tmp / "card.json")  # last: a directory with card.json is complete
        for f in self.tmp.rglob("*"):  # np.save honours the umask already; make every file alike
            f.chmod(default_mode(directory=f.is_dir()))


def _save_format1(data: CrossModalData, tmp: Path, split_indices, sidecars) -> None:
    """The format-1 layout (one ``.npz`` per split); kept so that tests can make the stores older versions wrote."""
    card = {k: v for k, v in data.card.items() if k not in ("split_files", "stored_dtypes", "widened_on_load")}
    files: dict[str, str] = {}
    for name, split in data.splits.items():
        f = tmp / f"{name}.npz"
        np.savez(f, **_split_arrays(split, narrow=False))
        files[f.name] = sha256_file(f)
    if split_indices is not None:
        f = tmp / "split_indices.npz"
        np.savez(f, **{k: np.asarray(v, dtype=np.int64) for k, v in split_indices.items()})
        files[f.name] = sha256_file(f)
    for fname, obj in (sidecars or {}).items():
        write_json_atomic(obj, tmp / fname)
        files[fname] = sha256_file(tmp / fname)
    first = next(iter(data.splits.values()))
    card["store_format"] = 1
    card["counts"] = {k: len(v) for k, v in data.splits.items()}
    card["feature_widths"] = {m: int(np.prod(a.shape[1:])) for m, a in first.inputs.items()}
    card["input_shapes"] = {m: list(a.shape[1:]) for m, a in first.inputs.items()}
    card["input_dtypes"] = {m: str(a.dtype) for m, a in first.inputs.items()}
    card["num_labels"] = int(first.labels.shape[1])
    card["extras"] = sorted(extras_of(first))
    card["store_files_sha256"] = files
    write_json_atomic(card, tmp / "card.json")
    for f in tmp.iterdir():
        f.chmod(default_mode())


def save_store(data: CrossModalData, path: str | Path, *, split_indices: dict[str, np.ndarray] | None = None,
               sidecars: dict[str, Any] | None = None, overwrite: bool = False, store_format: int = STORE_FORMAT
               ) -> Path:
    """Write ``data`` as a canonical store at ``path`` (atomic). Returns the path.

    ``split_indices``: split -> row indices into the source release (stored in split_indices.npz);
    ``sidecars``: file name -> JSON object (e.g. ``{"vocab.json": [...]}``); ``store_format`` 1 writes the old
    layout (for tests of reading old stores).
    """
    path = Path(path)
    if store_format not in READABLE_FORMATS:
        raise DataError(f"store_format {store_format!r}: this bitrieve writes {READABLE_FORMATS}")
    check_store_target(path, overwrite)
    with atomic_directory(path, "partial", is_ours=is_store_alone, what="canonical store") as tmp:
        # an interrupted conversion leaves only .NAME.partial-* (removed by the next successful write of NAME)
        if store_format == 1:
            _save_format1(data, tmp, split_indices, sidecars)
            return path
        w = StoreWriter(tmp)
        streamed: dict[int, list[tuple[RowSelection, NpyRowWriter]]] = {}
        try:
            for name, split in data.splits.items():
                for k, a in _split_arrays(split).items():
                    if isinstance(a, RowSelection):  # written below, in one pass over its source
                        streamed.setdefault(id(a.source), []).append((a, w.rows_writer(name, k, a.shape, a.dtype)))
                    else:
                        w.put(name, k, a)
            for targets in streamed.values():
                stream_selections(targets, str(data.card.get("name", "<dataset>")))
        finally:
            for targets in streamed.values():
                for _, writer in targets:
                    writer.close()
        w.finish(data.card, split_indices, sidecars)
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
    if card.get("store_format") not in READABLE_FORMATS:
        raise DataError(f"{card_file}: store_format {card.get('store_format')!r}, this bitrieve reads "
                        f"{', '.join(map(str, READABLE_FORMATS))}")
    return card


def load_split_indices(path: str | Path) -> dict[str, np.ndarray]:
    f = Path(path) / "split_indices.npz"
    if not f.is_file():
        return {}
    with np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_VERIFIED: dict[tuple[str, str], tuple[int, int, int, int]] = {}  # (file, sha256) -> (ino, size, mtime, ctime)


def _stamp(f: Path) -> tuple[int, int, int, int]:
    st = os.stat(f)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def verify_file(path: Path, name: str, digest: str | None) -> None:
    """The sha256 of store file ``path / name`` against ``digest`` (from card.json); DataError naming the file when
    it is missing or differs. A file that passed is not hashed again in this process while its inode, size and
    modification/change times are unchanged (an edit, a rewrite or a replacement changes them)."""
    f = path / name
    if digest is None:
        raise DataError(f"{path / 'card.json'}: 'store_files_sha256' has no entry for {name}")
    if not f.is_file():
        raise DataError(f"{path}: file {name} listed in card.json is missing")
    key = (str(f.resolve()), digest)
    stamp = _stamp(f)
    if _VERIFIED.get(key) == stamp:
        return
    if sha256_file(f) != digest:
        raise DataError(f"{f}: sha256 differs from card.json: the file changed after conversion (disk "
                        "corruption or an edit), so it cannot be trusted; convert the release again")
    _VERIFIED[key] = stamp


def _listed(path: Path, card: dict[str, Any] | None = None) -> dict[str, str]:
    listed = (card if card is not None else read_card(path)).get("store_files_sha256")
    if not isinstance(listed, dict) or not listed:
        raise DataError(f"{path / 'card.json'}: no 'store_files_sha256' map, so the store's files cannot be verified "
                        "(convert the release again)")
    return listed


def verify_store(path: str | Path, names: tuple[str, ...] | None = None) -> list[str]:
    """Recompute the sha256 of the store files listed in card.json (all, or only ``names``); DataError naming the
    first that is missing or differs. Returns the names verified."""
    path = Path(path)
    listed = _listed(path)
    for name in names or tuple(listed):
        verify_file(path, name, listed.get(name))
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


def read_npy(f: Path, key: str, mmap: bool = True) -> np.ndarray:
    """One array of a format-2 store, memory-mapped read-only (``mmap``) and never unpickled; a damaged file or an
    object array is a DataError naming the file and key."""
    try:
        with open(f, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # np.save writes 1.0 (2.0 for huge headers)
            shape, _, dtype = read_header(fh)  # header only
        if dtype.hasobject:
            raise DataError(f"{f}: key '{key}' cannot be read without unpickling (dtype {dtype}); a store holds plain "
                            "numeric/unicode arrays only")
        use_mmap = mmap and int(np.prod(shape)) > 0  # an empty array cannot be mapped
        return np.load(f, mmap_mode="r" if use_mmap else None, allow_pickle=False)
    except DataError:
        raise
    except (EOFError, OSError, ValueError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise DataError(f"{f}: key '{key}' is not a readable .npy array ({type(e).__name__}: {e}); the store is "
                        "damaged, convert the release again") from None


class WidenedArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A read-only 2-d ``uint8`` array (binary tags) seen as float32: indexing returns float32 rows, so a batch is
    widened when it is taken, never the whole array; ``np.asarray`` gives the whole array as float32. ``raw`` is the
    stored uint8 array (memory-mapped). Arithmetic, numpy functions and ndarray methods (``x.sum(1)``) work on the
    whole array widened (convenient for small splits; batch code slices first)."""

    dtype = np.dtype(np.float32)

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.raw.shape)

    @property
    def ndim(self) -> int:
        return self.raw.ndim

    @property
    def size(self) -> int:
        return int(self.raw.size)

    @property
    def nbytes(self) -> int:
        return int(self.raw.size) * 4

    def __len__(self) -> int:
        return int(self.raw.shape[0])

    def __getitem__(self, idx: Any) -> np.ndarray:
        return np.asarray(self.raw[idx], dtype=np.float32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.raw, dtype=np.float32 if dtype is None else dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(i) if isinstance(i, WidenedArray) else i for i in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "raw":
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def __repr__(self) -> str:
        return f"WidenedArray(uint8 -> float32, shape={self.shape})"


def materialized(a: Any) -> np.ndarray:
    """A plain in-memory ndarray of a store array (a memory map or a `WidenedArray` is read whole)."""
    return np.array(a) if isinstance(a, (np.memmap, WidenedArray)) else np.asarray(a)


def whole(arrays: Mapping, key: str, widen: bool = True) -> np.ndarray:
    """``arrays[key]`` read whole into a plain, writable ndarray. For a lazily opened store file it is read with
    ordinary file reads, not through its memory map, so the process does not also hold the mapped pages (which count
    as resident memory); ``widen=False`` keeps binary tags uint8 (the engine widens them per batch)."""
    if isinstance(arrays, LazyArrays):
        return arrays.read_whole(key, widen)
    a = arrays[key]
    if isinstance(a, WidenedArray):
        return np.array(a.raw) if not widen else np.asarray(a)
    return materialized(a)


def in_memory(split: Split) -> Split:
    """``split`` with every array read into memory (widened tags as float32): what a method's ``prepare`` gets,
    since methods treat inputs as plain arrays. A split that is already in memory is returned as it is."""
    lazy = getattr(split.inputs, "checked_on_open", False) or getattr(split.extras, "checked_on_open", False)
    if not lazy:
        return split
    return Split({m: whole(split.inputs, m) for m in split.inputs}, split.labels, split.ids,
                 {k: whole(split.extras, k) for k in split.extras})


class LazyArrays(Mapping):
    """``key -> array`` of one split of a format-2 store, each opened (sha256-verified once per process, then
    memory-mapped) on first use; its row count is checked against card.json then (``checked_on_open``)."""

    checked_on_open = True

    def __init__(self, path: Path, split: str, keys: list[str], rows: int, digests: dict[str, str],
                 widened: tuple[str, ...] = (), prefix: str = "", verify: bool = True) -> None:
        self._path, self._split, self._keys, self._rows = path, split, list(keys), rows
        self._digests, self._widened, self._prefix, self._verify = digests, widened, prefix, verify
        self._open: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._open:
            return self._open[key]
        if key not in self._keys:
            raise KeyError(key)
        name = f"{self._split}/{self._prefix}{key}.npy"
        if self._verify:
            verify_file(self._path, name, self._digests.get(name))
        f = self._path / name
        a = read_npy(f, self._prefix + key)
        if a.ndim == 0 or a.shape[0] != self._rows:
            raise DataError(f"{f}: {a.shape[0] if a.ndim else 'no'} rows, card.json says {self._rows}")
        out = WidenedArray(a) if key in self._widened else a
        self._open[key] = out
        return out

    def read_whole(self, key: str, widen: bool = True) -> np.ndarray:
        """``self[key]`` (verified, row count checked) read whole with file reads (no memory map); a widened
        modality as float32, or as stored (uint8) with ``widen=False``."""
        a = self[key]
        f = self._path / f"{self._split}/{self._prefix}{key}.npy"
        out = read_npy(f, self._prefix + key, mmap=False)
        if out.shape != a.shape:  # the file was replaced after it was opened and verified
            raise DataError(f"{f}: shape {out.shape} differs from {a.shape} read a moment ago; the store changed")
        return out.astype(np.float32) if widen and isinstance(a, WidenedArray) else out

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __repr__(self) -> str:
        return f"LazyArrays({self._split}: {', '.join(self._keys)}; opened: {', '.join(self._open) or 'none'})"


def _load_v2(path: Path, card: dict[str, Any], names: tuple[str, ...], verify: bool) -> dict[str, Split]:
    digests = _listed(path, card) if verify else dict(card.get("store_files_sha256") or {})
    files = card.get("split_files") or {}
    widened = tuple(card.get("widened_on_load") or ())
    out: dict[str, Split] = {}
    for name in names:
        listed = files.get(name)
        if not listed:
            raise DataError(f"{path / 'card.json'}: 'split_files' lists no files for split '{name}' (card lists splits "
                            f"{list(card['counts'])})")
        keys = [Path(f).name[: -len(".npy")] for f in listed]
        n = card["counts"].get(name)
        small = {}
        for key in _RESERVED:
            if key not in keys:
                raise DataError(f"{path / name}: missing key '{key}' (keys: {sorted(keys)})")
            fname = f"{name}/{key}.npy"
            if verify:
                verify_file(path, fname, digests.get(fname))
            small[key] = np.array(read_npy(path / fname, key, mmap=False))
        if len(small["ids"]) != n:
            raise DataError(f"{path / name / 'ids.npy'}: {len(small['ids'])} rows, card.json says {n}")
        mods = [k for k in keys if k not in _RESERVED and not k.startswith(EXTRA_PREFIX)]
        extras = [k[len(EXTRA_PREFIX):] for k in keys if k.startswith(EXTRA_PREFIX)]
        inputs = LazyArrays(path, name, mods, n, digests, widened, verify=verify)
        side = LazyArrays(path, name, extras, n, digests, prefix=EXTRA_PREFIX, verify=verify)
        out[name] = Split(inputs, small["labels"], small["ids"], side)  # type: ignore[arg-type]
    return out


def _load_v1(path: Path, card: dict[str, Any], names: tuple[str, ...], verify: bool) -> dict[str, Split]:
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
    return out


def load_store(path: str | Path, splits: tuple[str, ...] | None = None, verify: bool = True) -> CrossModalData:
    """Open a canonical store as a validated `CrossModalData` (all splits, or ``splits``).

    Format 2: lazy. ``ids`` and ``labels`` of each split are read now; every modality and side column is opened,
    memory-mapped, when first used (``split.inputs["image"]``), so a command reads only what it touches. Format 1:
    the ``.npz`` of each split is read whole.

    ``verify=True`` (default) checks the sha256 of each file against card.json before its first use (once per
    process for an unchanged file), so an array changed after conversion is an error, not a silently different
    result (cost: see docs/guarantees.md).
    """
    path = Path(path)
    card = read_card(path)
    names = splits or tuple(card["counts"])
    unknown = [n for n in names if n not in card["counts"]]
    if unknown:
        raise DataError(f"{path}: no split {', '.join(unknown)} (card lists splits {list(card['counts'])})")
    load = _load_v2 if card["store_format"] == 2 else _load_v1
    return CrossModalData(load(path, card, names, verify), card)


def check_values(data: CrossModalData, chunk: int = 8192) -> None:
    """The value checks conversion made (finite features), over every opened-lazily array of ``data``, in row
    chunks (bounded memory); `bitrieve data verify` runs it."""
    for name, split in data.splits.items():
        for m, a in split.inputs.items():
            if not np.issubdtype(a.dtype, np.floating) or isinstance(a, WidenedArray):
                continue
            bad = sum(int((~np.isfinite(a[s:s + chunk])).sum()) for s in range(0, len(a), chunk))
            if bad:
                raise DataError(f"{data.card.get('name', '<dataset>')}/{name}: modality '{m}' has {bad} NaN/inf values")
        for k, a in split.extras.items():
            if len(a) != len(split):
                raise DataError(f"{name}: extra column '{k}' has {len(a)} rows, ids have {len(split)}")


def store_files(path: str | Path, card: dict[str, Any], split: str) -> list[str]:
    """The files of one split (format 1: ``<split>.npz``; format 2: ``<split>/<key>.npy``)."""
    if card.get("store_format") == 1:
        return [f"{split}.npz"]
    return list((card.get("split_files") or {}).get(split, []))


def read_labels(path: str | Path, split: str, verify: bool = False) -> np.ndarray:
    """The ``labels`` of one split, whatever the format (`bitrieve data info`)."""
    path = Path(path)
    card = read_card(path)
    if card["store_format"] == 1:
        return read_npz(path / f"{split}.npz", ("labels",))["labels"]
    if verify:
        verify_store(path, (f"{split}/labels.npy",))
    return np.array(read_npy(path / split / "labels.npy", "labels", mmap=False))


def read_sidecar(path: str | Path, name: str) -> Any:
    f = Path(path) / name
    if not f.is_file():
        raise DataError(f"{path}: sidecar {name} missing")
    return read_json_file(f, DataError, expect_object=False)
