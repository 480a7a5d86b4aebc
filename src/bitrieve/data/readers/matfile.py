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
