"""Read one named array from a MATLAB file of either kind: v5 (scipy.io.loadmat, row-major as saved) or v7.3
(HDF5 via h5py; MATLAB stores column-major, so h5py sees the array transposed and we transpose it back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.types import DataError


def is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n" or (f.seek(512) == 512 and f.read(8) == b"\x89HDF\r\n\x1a\n")


def load_mat_array(path: Path, key: str, what: str) -> np.ndarray:
    """Array ``key`` from ``path`` with samples as rows (v7.3 files are transposed back)."""
    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError(f"{path}: no key '{key}' ({what}); keys present: {sorted(f)}")
            return np.asarray(f[key]).T
    import scipy.io

    m = scipy.io.loadmat(path, variable_names=[key])
    if key not in m:
        keys = sorted(k for k in scipy.io.whosmat(path) for k in [k[0]])
        raise DataError(f"{path}: no key '{key}' ({what}); keys present: {keys}")
    return m[key]


class H5ImageArray:
    """Lazy rows of a v7.3 `IAll` image array as stored by the DCMH/DJSRH releases: h5py sees (N, C, W, H)
    (DJSRH reads it with ``transpose([0, 3, 2, 1])`` to get N x H x W x C). Indexing one row gives H x W x C uint8."""

    def __init__(self, path: Path, key: str, rows: np.ndarray | None = None) -> None:
        import h5py

        self.path, self.key = path, key
        self._ds = h5py.File(path, "r")[key]
        if self._ds.ndim != 4:
            raise DataError(f"{path}: '{key}' has shape {self._ds.shape}, expected 4-d raw images")
        self.rows = np.arange(self._ds.shape[0]) if rows is None else rows
        self.ndim = 4

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return np.asarray(self._ds[int(self.rows[i])]).transpose(2, 1, 0)
        return H5ImageArray(self.path, self.key, self.rows[np.asarray(i)])
