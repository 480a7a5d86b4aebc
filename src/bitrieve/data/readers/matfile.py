"""Read one named array from a MATLAB file of either kind: v5 (scipy.io.loadmat, row-major as saved) or v7.3
(HDF5 via h5py; MATLAB stores column-major, so h5py sees the array transposed and we transpose it back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.readers.common import numeric_matrix, reading
from bitrieve.data.types import DataError


def is_hdf5(path: Path) -> bool:
    """True if ``path`` starts with the HDF5 signature (at byte 0, or 512 after a MATLAB v7.3 header)."""
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n" or (f.seek(512) == 512 and f.read(8) == b"\x89HDF\r\n\x1a\n")


def load_mat_v5(path: Path, variable_names: list[str] | None = None) -> dict:
    """``scipy.io.loadmat`` with a damaged file (truncated, corrupt, not a .mat) reported as one DataError."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        with reading(path, "a MATLAB v5 .mat file"):
            return scipy.io.loadmat(path, variable_names=variable_names)
    except MatReadError as e:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({e}); the file is truncated, corrupt or of "
                        "another format") from None


def load_mat_array(path: Path, key: str, what: str) -> np.ndarray:
    """Array ``key`` from ``path`` with samples as rows (v7.3 files are transposed back); numeric and 2-d."""
    if is_hdf5(path):
        import h5py

        with reading(path, "a MATLAB v7.3 (HDF5) .mat file"):
            with h5py.File(path, "r") as f:
                if key not in f:
                    raise DataError(f"{path}: no key '{key}' ({what}); keys present: {sorted(f)}")
                ds = f[key]
                if not hasattr(ds, "dtype"):
                    raise DataError(f"{path}: key '{key}' ({what}) is a group, expected a numeric array")
                a = np.asarray(ds)
        return numeric_matrix(a.T if a.ndim == 2 else a, path, key, what)
    m = load_mat_v5(path, [key])
    if key not in m:
        import scipy.io

        with reading(path, "a MATLAB v5 .mat file"):
            keys = sorted(k[0] for k in scipy.io.whosmat(path))
        raise DataError(f"{path}: no key '{key}' ({what}); keys present: {keys}")
    return numeric_matrix(m[key], path, key, what)


class H5Rows:
    """A 2-d numeric array of a MATLAB v7.3 file read by rows through h5py, never whole: h5py sees the MATLAB
    matrix transposed (D, N), so rows ``start:stop`` are the column block ``ds[:, start:stop]`` transposed.
    ``shape`` / ``dtype`` are those of the (N, D) matrix. The file stays open while the object lives."""

    def __init__(self, path: Path, key: str, what: str) -> None:
        import h5py

        self.path, self.key, self.what = path, key, what
        with reading(path, "a MATLAB v7.3 (HDF5) .mat file"):
            self._file = h5py.File(path, "r")
            if key not in self._file:
                keys = sorted(self._file)
                self._file.close()
                raise DataError(f"{path}: no key '{key}' ({what}); keys present: {keys}")
            ds = self._file[key]
        if not hasattr(ds, "dtype"):
            raise DataError(f"{path}: key '{key}' ({what}) is a group, expected a numeric array")
        if ds.dtype.kind not in "biuf":
            raise DataError(f"{path}: key '{key}' ({what}) holds {ds.dtype} values, expected numbers")
        if ds.ndim != 2:
            raise DataError(f"{path}: key '{key}' ({what}) has shape {ds.shape[::-1]}, expected a 2-d (N, D) array")
        self._ds = ds
        self.index: np.ndarray | None = None  # a sorted subset of the file's rows (`subset`), or all of them
        self.shape = (int(ds.shape[1]), int(ds.shape[0]))
        self.dtype = ds.dtype
        self.out_dtype = ds.dtype  # the dtype the store keeps (set by the reader)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def subset(self, rows: np.ndarray) -> "H5Rows":
        """The rows ``rows`` (increasing) of this array, still read lazily (e.g. rows left after dropping empty
        labels)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > 1 and (np.diff(rows) <= 0).any():
            raise ValueError("H5Rows.subset needs increasing rows")
        out = object.__new__(H5Rows)
        out.__dict__.update(self.__dict__)
        out.index = rows if self.index is None else self.index[rows]
        out.shape = (len(rows), self.shape[1])
        return out

    def __getitem__(self, rows) -> "H5Rows":
        return self.subset(np.arange(self.shape[0])[rows])

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an (n, D) array in the file's dtype (one read of a column block)."""
        if self.index is None:
            lo, hi, take = start, stop, None
        else:
            wanted = self.index[start:stop]
            if not len(wanted):
                return np.zeros((0, self.shape[1]), self.dtype)
            lo, hi, take = int(wanted[0]), int(wanted[-1]) + 1, wanted - int(wanted[0])
        with reading(self.path, f"rows {lo}:{hi} of key '{self.key}'"):
            block = self._ds[:, lo:hi]
        block = block.T
        return np.ascontiguousarray(block if take is None else block[take])

    def is_binary(self, block_rows: int = 8192) -> bool:
        """True if every value is 0 or 1 (read by row blocks)."""
        return all(np.isin(self.read_rows(s, min(s + block_rows, self.shape[0])), (0, 1)).all()
                   for s in range(0, self.shape[0], block_rows))


def open_mat_rows(path: Path, key: str, what: str) -> "np.ndarray | H5Rows":
    """Array ``key`` of ``path`` with samples as rows, for large arrays: a v7.3 file gives a lazy `H5Rows` (read by
    row blocks when the store is written); a v5 file is read whole (scipy cannot read a v5 array by rows)."""
    if is_hdf5(path):
        return H5Rows(path, key, what)
    return load_mat_array(path, key, what)


class H5ImageArray:
    """Lazy rows of a v7.3 `IAll` image array as stored by the DCMH/DJSRH releases: h5py sees (N, C, W, H)
    (DJSRH reads it with ``transpose([0, 3, 2, 1])`` to get N x H x W x C). Indexing one row gives H x W x C uint8."""

    def __init__(self, path: Path, key: str, rows: np.ndarray | None = None) -> None:
        import h5py

        self.path, self.key = path, key
        with reading(path, "a MATLAB v7.3 (HDF5) .mat file with raw images"):
            self._ds = h5py.File(path, "r")[key]
        if not hasattr(self._ds, "ndim") or self._ds.ndim != 4 or self._ds.dtype.kind not in "biuf":
            raise DataError(f"{path}: '{key}' holds {getattr(self._ds, 'dtype', 'a group')} "
                            f"{getattr(self._ds, 'shape', '')}, expected 4-d numeric raw images")
        self.rows = np.arange(self._ds.shape[0]) if rows is None else rows
        self.ndim = 4

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            with reading(self.path, f"raw image {int(self.rows[i])} of key '{self.key}'"):
                return np.asarray(self._ds[int(self.rows[i])]).transpose(2, 1, 0)
        return H5ImageArray(self.path, self.key, self.rows[np.asarray(i)])
