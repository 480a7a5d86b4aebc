"""Streaming conversion (issue 21, item 3): a MATLAB v7.3 release is read by row blocks through h5py and each
split file is written row by row; the store equals an in-memory reference built independently from the release."""

import json

import numpy as np
import pytest

from bitrieve.cli import main
from bitrieve.data.store import load_store
from bitrieve.data.types import DataError


def _write_v73(path, key, a):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5, the matrix stored transposed (h5py sees (D, N))."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=np.ascontiguousarray(a.T))


def _release(root, n=203, dim=37, tags=11, classes=4, v73=True, nan_row=None):
    import scipy.io

    rng = np.random.default_rng(5)
    labels = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    labels[rng.random((n, classes)) < 0.2] = 1
    y = (rng.random((n, tags)) < 0.3).astype(np.uint8)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    if nan_row is not None:
        x[nan_row, 3] = np.nan
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "toy-lall.mat", {"LAll": labels})
    if v73:
        _write_v73(root / "toy-yall.mat", "YAll", y.astype(np.float64))  # MATLAB doubles: still binary -> uint8
        _write_v73(root / "toy-iall-vgg.mat", "XAll", x)
    else:
        scipy.io.savemat(root / "toy-yall.mat", {"YAll": y})
        scipy.io.savemat(root / "toy-iall-vgg.mat", {"XAll": x})
    return labels, y, x


def _convert(src, dest, *extra) -> int:
    return main(["data", "convert", "--from", "mscoco-mat", "--prefix", "toy", str(src), "--split",
                 "mscoco-scaled-203", "--to", str(dest), "--no-progress", *extra])


@pytest.mark.parametrize("v73", [True, False], ids=["v7.3", "v5"])
def test_streamed_store_equals_the_release_rows(tmp_path, monkeypatch, v73):
    import bitrieve.data.convert as convert
    import bitrieve.data.store as store

    labels, y, x = _release(tmp_path / "rel", v73=v73)
    monkeypatch.setattr(store, "STREAM_BLOCK_BYTES", 37 * 4 * 17)  # 17 rows per block: many blocks
    monkeypatch.setattr(convert, "STREAM_MIN_BYTES", 0)  # the v5 arrays (in memory) are streamed too
    assert _convert(tmp_path / "rel", tmp_path / "s") == 0
    card = json.loads((tmp_path / "s" / "card.json").read_text())
    assert card["stored_dtypes"] == {"image": "float32", "text": "uint8"} and card["widened_on_load"] == ["text"]
    idx = np.load(tmp_path / "s" / "split_indices.npz")
    data = load_store(tmp_path / "s")
    for name in ("train", "query", "retrieval"):
        rows = idx[name]
        assert len(np.unique(rows)) == len(rows) > 0
        split = data[name]
        np.testing.assert_array_equal(np.load(tmp_path / "s" / name / "image.npy"), x[rows])
        np.testing.assert_array_equal(np.load(tmp_path / "s" / name / "text.npy"), y[rows])
        np.testing.assert_array_equal(np.asarray(split.inputs["text"]), y[rows].astype(np.float32))
        np.testing.assert_array_equal(split.labels, labels[rows])
        np.testing.assert_array_equal(split.ids, rows)
    assert main(["data", "verify", str(tmp_path / "s")]) == 0


def test_v73_release_is_read_by_row_blocks_never_whole(tmp_path, monkeypatch):
    from bitrieve.data.readers import matfile

    _, _, x = _release(tmp_path / "rel")
    reads = []
    real = matfile.H5Rows.read_rows

    def spy(self, start, stop):
        reads.append((self.key, stop - start))
        return real(self, start, stop)

    monkeypatch.setattr(matfile.H5Rows, "read_rows", spy)
    import bitrieve.data.store as store

    monkeypatch.setattr(store, "STREAM_BLOCK_BYTES", 37 * 4 * 50)
    assert _convert(tmp_path / "rel", tmp_path / "s") == 0
    image_reads = [n for k, n in reads if k == "XAll"]
    assert image_reads and max(image_reads) <= 50 and sum(image_reads) == len(x)  # one pass, 50-row blocks


def test_nan_in_a_v73_feature_matrix_names_file_and_key(tmp_path, capsys):
    _release(tmp_path / "rel", nan_row=77)
    assert _convert(tmp_path / "rel", tmp_path / "s") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "toy-iall-vgg.mat" in err[0] and "'XAll'" in err[0] and "NaN/inf" in err[0], err
    assert "source row 77" in err[0]
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_wrong_shape_in_a_v73_file_is_one_line(tmp_path, capsys):
    _release(tmp_path / "rel")
    import h5py

    with h5py.File(tmp_path / "rel" / "toy-iall-vgg.mat", "w") as f:
        f.create_dataset("XAll", data=np.zeros((2, 3, 4), np.float32))
    assert _convert(tmp_path / "rel", tmp_path / "s") == 2
    err = capsys.readouterr().err.strip()
    assert "toy-iall-vgg.mat" in err and "'XAll'" in err and "2-d" in err and "\n" not in err


def test_h5rows_subset_reads_the_same_rows(tmp_path):
    from bitrieve.data.readers.matfile import H5Rows

    x = np.arange(60, dtype=np.float32).reshape(12, 5)
    _write_v73(tmp_path / "a.mat", "XAll", x)
    h = H5Rows(tmp_path / "a.mat", "XAll", "features")
    assert h.shape == (12, 5) and np.array_equal(h.read_rows(3, 7), x[3:7])
    sub = h.subset(np.array([1, 4, 5, 11]))
    assert sub.shape == (4, 5) and np.array_equal(sub.read_rows(0, 4), x[[1, 4, 5, 11]])
    assert np.array_equal(sub.read_rows(1, 3), x[[4, 5]])
    with pytest.raises(DataError, match="no key 'YAll'"):
        H5Rows(tmp_path / "a.mat", "YAll", "tags")
