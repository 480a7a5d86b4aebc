import numpy as np
import pytest

from bitrieve.data import load_data
from bitrieve.data.types import CrossModalData, DataError, Split
from bitrieve.data.wiki import read_wiki_mat


def test_wiki_real_file():
    d = read_wiki_mat()
    assert d.card["counts"] == {"train": 2173, "query": 693, "retrieval": 2173}
    assert d["train"].inputs["image"].shape == (2173, 128)
    assert d["query"].inputs["text"].shape == (693, 10)
    assert d.num_labels == 10
    for split in ("train", "query"):
        assert (d[split].labels.sum(1) == 1).all()  # one label per row
    # class sizes from the dataset's SOURCE.md (art 34 ... warfare 104 in the test set)
    assert d["query"].labels.sum(0).tolist() == [34, 88, 96, 85, 65, 58, 51, 41, 71, 104]
    assert load_data("wiki").card["sha256"]["wiki_data.mat"].startswith("8167d490")


def test_wiki_reader_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_wiki_mat(tmp_path / "nope.mat")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(DataError, match="not an HDF5"):
        read_wiki_mat(bad)
    import h5py

    p = tmp_path / "partial.mat"
    with h5py.File(p, "w") as f:
        f["I_tr"] = np.zeros((128, 3))
    with pytest.raises(DataError, match="missing key 'I_te'"):
        read_wiki_mat(p)


def _split(n, labels=None, ids=None, image=None):
    return Split({"image": np.zeros((n, 4), np.float32) if image is None else image},
                 np.eye(2, dtype=np.uint8)[np.arange(n) % 2] if labels is None else labels,
                 np.arange(n) if ids is None else ids)


def test_validation_messages():
    with pytest.raises(DataError, match="duplicates"):
        CrossModalData({"train": _split(3, ids=np.array([0, 0, 1]))}, {"name": "x"})
    with pytest.raises(DataError, match="0/1 multi-hot"):
        CrossModalData({"train": _split(2, labels=np.array([[2, 0], [0, 1]]))})
    img = np.zeros((3, 4), np.float32)
    img[1, 2] = np.nan
    with pytest.raises(DataError, match="1 NaN/inf"):
        CrossModalData({"train": _split(3, image=img)})
    with pytest.raises(DataError, match="has 2 rows, ids have 3"):
        CrossModalData({"train": _split(3, image=np.zeros((2, 4)))})
    with pytest.raises(DataError, match="no split 'query'"):
        CrossModalData({"train": _split(3)})["query"]
