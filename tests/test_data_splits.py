"""Split protocols (seeded, byte-identical, standard counts) and source validation errors."""

import warnings

import numpy as np
import pytest

from bitrieve.data.splits import SPLITS, get_split
from bitrieve.data.source import Source, validate_source
from bitrieve.data.types import DataError


def _cifar_like(per_train=5000, per_test=1000, classes=10):
    cls = np.concatenate([np.repeat(np.arange(classes), per_train), np.repeat(np.arange(classes), per_test)])
    off = np.array(["train"] * (per_train * classes) + ["test"] * (per_test * classes))
    n = len(cls)
    return Source({"image": np.zeros((n, 1), np.float32)}, np.eye(classes, dtype=np.uint8)[cls],
                  np.arange(n, dtype=np.int64), {"name": "cifar-like"}, off)


def test_cifar10_1_standard_counts_and_disjointness():
    src = _cifar_like()
    idx = get_split("cifar10-1").split(src, 0)
    q, tr, db = idx["query"], idx["train"], idx["retrieval"]
    assert (len(q), len(tr), len(db)) == (1000, 5000, 59000)
    assert (src.official[q] == "test").all() and (src.official[tr] == "train").all()
    assert (np.bincount(src.labels[q].argmax(1)) == 100).all() and (np.bincount(src.labels[tr].argmax(1)) == 500).all()
    assert len(np.intersect1d(q, db)) == 0 and len(np.intersect1d(tr, db)) == 5000
    assert len(np.unique(db)) == 59000
    assert not (np.diff(src.labels[db].argmax(1)) >= 0).all()  # retrieval order is not class-sorted


def test_same_seed_byte_identical_other_seed_differs():
    src = _cifar_like(per_train=60, per_test=110, classes=10)
    p = get_split("cifar10-1")
    with pytest.raises(DataError, match="class 0 has 60 rows, split recipe needs 500"):
        p.split(src, 0)
    src = _cifar_like(per_train=500, per_test=100, classes=10)
    a, b, c = p.split(src, 7), p.split(src, 7), p.split(src, 8)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    assert a["query"].tobytes() != c["query"].tobytes()


def test_cifar10_2_and_mnist_and_mirflickr_counts():
    src = _cifar_like(per_train=50, per_test=10)
    idx = get_split("cifar10-2").split(src, 0)
    assert sorted(idx["retrieval"].tolist()) == list(range(500)) and len(idx["query"]) == 100
    mn = _cifar_like(per_train=0, per_test=1000)
    mn.official = None
    idx = get_split("mnist-test").split(mn, 0)
    assert (len(idx["query"]), len(idx["retrieval"]), len(idx["train"])) == (1000, 9000, 5000)
    mf = Source({"text": np.zeros((20015, 2), np.float32)}, np.ones((20015, 24), np.uint8), np.arange(20015),
                {"name": "mirflickr25k"})
    for name in ("mirflickr25k", "mirflickr25k-random"):
        idx = get_split(name).split(mf, 0)
        assert (len(idx["query"]), len(idx["retrieval"]), len(idx["train"])) == (2000, 18015, 5000)
    assert np.isin(idx["train"], idx["retrieval"]).all() and not np.isin(idx["query"], idx["retrieval"]).any()
    with pytest.raises(DataError, match="give a split seed"):
        get_split("mirflickr25k").split(mf, None)


def test_every_protocol_cites_something():
    for p in SPLITS.values():
        assert p.citation and p.description


def _src(labels, image=None, ids=None):
    n = len(labels)
    return Source({"image": np.zeros((n, 2), np.float32) if image is None else image}, np.asarray(labels),
                  np.arange(n) if ids is None else np.asarray(ids), {"name": "toy"})


def test_validation_errors_are_specific():
    with pytest.raises(DataError, match="labels must be 0/1.*2"):
        validate_source(_src([[0, 2], [1, 0]]))
    img = np.zeros((3, 2), np.float32)
    img[0, 0], img[2, 1], img[2, 0] = np.nan, np.inf, np.nan
    with pytest.raises(DataError, match="3 NaN/inf values in 2 rows"):
        validate_source(_src([[1, 0]] * 3, image=img))
    with pytest.raises(DataError, match="1 duplicate ids"):
        validate_source(_src([[1, 0]] * 3, ids=[4, 5, 4]))
    with pytest.raises(DataError, match="'image' has 2 rows, labels/ids have 3"):
        validate_source(_src([[1, 0]] * 3, image=np.zeros((2, 2), np.float32)))


def test_empty_label_policies():
    labels = [[1, 0], [0, 0], [0, 1], [0, 0]]
    with pytest.raises(DataError, match="2 of 4 rows have no label"):
        validate_source(_src(labels), "fail")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = validate_source(_src(labels), "drop")
    assert len(out) == 2 and out.ids.tolist() == [0, 2] and out.card["dropped_empty_label_rows"] == 2
    assert any("dropped 2 of 4" in str(x.message) for x in w)
    assert len(validate_source(_src(labels), "keep")) == 4


def test_nuswide10_counts_at_release_size():
    n = 186577
    labels = np.eye(10, dtype=np.uint8)[np.random.default_rng(0).integers(0, 10, n)]
    labels[::3, 4] = 1  # multi-label rows: a row picked for an earlier label is not picked again
    src = Source({"text": np.zeros((n, 1), np.float32)}, labels, np.arange(n), {"name": "nus"})
    idx = get_split("nuswide10").split(src, 3)
    assert (len(idx["query"]), len(idx["retrieval"]), len(idx["train"])) == (2000, 184577, 5000)
    assert len(np.unique(np.concatenate([idx["query"], idx["train"]]))) == 7000
    assert (labels[idx["query"]].sum(0) >= 200).all()  # DJSRH: 200 queries drawn per label
    assert len(np.union1d(idx["query"], idx["retrieval"])) == n


def test_ucmfh_protocol_keeps_first_4992_training_rows():
    off = np.array(["train"] * 5000 + ["query"] * 3 + ["retrieval"] * 7)
    src = Source({"text": np.zeros((5010, 1), np.float32)}, np.ones((5010, 1), np.uint8), np.arange(5010),
                 {"name": "u"}, off)
    idx = get_split("ucmfh").split(src, None)
    assert idx["train"].tolist() == list(range(4992)) and len(idx["retrieval"]) == 7


def test_convert_takes_split_and_its_old_name_protocol():
    from bitrieve.cli import build_parser
    from bitrieve.data.cli import _options

    for flag in ("--split", "--protocol"):  # --protocol: the option's old name
        args = build_parser().parse_args(["data", "convert", "--from", "cifar10-jpg", "src", "--to", "out", flag,
                                          "cifar10-2"])
        assert _options(args).split == "cifar10-2"
    with pytest.raises(DataError, match=r"unknown split recipe 'cifar10-3' \(known: .*cifar10-1, cifar10-2, "):
        get_split("cifar10-3")
