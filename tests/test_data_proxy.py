"""`bitrieve data proxy`: shapes, label statistics against the figures the proxies were built from (typed here
again, or recomputed from the shared data), the feature kinds' properties, determinism, PROXY in the card and in the
reports, the release-layout round trip through the real readers."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bitrieve.cli import main
from bitrieve.data.store import load_store, read_card
from shared_data import SHARED_DATA

MIR = SHARED_DATA / "mirflickr25k"
COCO_MINI = SHARED_DATA / "coco-mini" / "annotations"
needs_mir = pytest.mark.skipif(not (MIR / "mirflickr25k-lall.mat").is_file(), reason="no shared MIRFlickr-25K copy")

# NUS-WIDE top-10: the ASSUMED frequencies (data/proxy.py; no published figure was found), in the label order
NUS = {"sky": 0.40, "clouds": 0.27, "person": 0.25, "water": 0.17, "animal": 0.14, "grass": 0.10, "buildings": 0.09,
       "window": 0.07, "plants": 0.06, "lake": 0.05}


def proxy(*args: str) -> int:
    return main(["data", "proxy", *args, "--no-progress"])


def sha256_dir(path: Path) -> dict[str, str]:
    return {f.relative_to(path).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def mir_dense(tmp_path_factory):
    if not (MIR / "mirflickr25k-lall.mat").is_file():
        pytest.skip("no shared MIRFlickr-25K copy")
    root = tmp_path_factory.mktemp("proxy")
    assert proxy("mirflickr25k", "--kind", "dense", "--rows", "1000", "--mir", str(MIR), "--to",
                 str(root / "store"), "--release-layout", str(root / "release")) == 0
    return root


@needs_mir
def test_mir_shapes_split_and_real_rows(mir_dense):
    data = load_store(mir_dense / "store")
    card = data.card
    assert card["counts"] == {"train": 250, "query": 100, "retrieval": 900}  # 2,000 / 5,000 of 20,015, scaled
    assert card["feature_widths"] == {"image": 4096, "text": 1386} and card["num_labels"] == 24
    assert card["protocol"]["name"] == "mirflickr25k-scaled-1000" and "SCALED" in card["protocol"]["description"]
    retrieval, query = data["retrieval"], data["query"]
    assert not set(query.ids) & set(retrieval.ids) and len(set(query.ids) | set(retrieval.ids)) == 1000
    assert set(data["train"].ids) <= set(retrieval.ids)
    # the labels and tags are the real rows named in proxy_rows.json
    from scipy.io import loadmat

    rows = np.array(json.loads((mir_dense / "store" / "proxy_rows.json").read_text())["full_rows"])
    lall, yall = loadmat(MIR / "mirflickr25k-lall.mat")["LAll"], loadmat(MIR / "mirflickr25k-yall.mat")["YAll"]
    np.testing.assert_array_equal(retrieval.labels, lall[rows[retrieval.ids]])
    np.testing.assert_array_equal(retrieval.inputs["text"], yall[rows[retrieval.ids]].astype(np.float32))
    # a seeded subset keeps the real per-label frequencies (4 binomial standard deviations)
    full = lall.mean(0)
    sub = lall[rows].mean(0)
    assert (np.abs(sub - full) <= 4 * np.sqrt(full * (1 - full) / 1000) + 1e-9).all()


@pytest.mark.parametrize("name,labels,tags,sizes", [("nuswide10", 10, 1000, (100, 200, 900)),
                                                     ("mscoco", 80, 2000, (100, 200, 900))])
def test_synthetic_shapes(tmp_path, name, labels, tags, sizes):
    assert proxy(name, "--kind", "sparse", "--rows", "1000", "--to", str(tmp_path / "s")) == 0
    card = read_card(tmp_path / "s")
    assert card["feature_widths"] == {"image": 4096, "text": tags} and card["num_labels"] == labels
    assert tuple(card["counts"][k] for k in ("query", "train", "retrieval")) == sizes
    data = load_store(tmp_path / "s")
    for split in data.splits.values():
        assert (split.labels.sum(1) > 0).all() and (split.inputs["text"].sum(1) > 0).all()
        assert set(np.unique(split.inputs["text"])) <= {0.0, 1.0}


def _coco_targets() -> np.ndarray:
    """Per-category image frequencies of COCO-mini, + 1/2, rescaled to Lin et al.'s 3.5 categories per image."""
    images: dict = {}
    order = None
    for part in ("train2017", "val2017"):
        d = json.loads((COCO_MINI / f"instances_{part}.json").read_text())
        order = order or [c["id"] for c in d["categories"]]
        for im in d["images"]:
            images[(part, im["id"])] = set()
        for a in d["annotations"]:
            images[(part, a["image_id"])].add(a["category_id"])
    counts = Counter(c for cats in images.values() for c in cats)
    raw = (np.array([counts[c] for c in order]) + 0.5) / len(images)
    return np.minimum(raw * 3.5 / raw.sum(), 0.9)


@pytest.mark.parametrize("name", ["nuswide10", "mscoco"])
def test_label_statistics_match_the_sources(name):
    from bitrieve.data.proxy import proxy_source

    ps = proxy_source(name, "clip")  # full size; clip skips the tags
    if name == "nuswide10":
        target = np.array(list(NUS.values()))
        assert ps.card["label_names"] == list(NUS)
    else:
        if not COCO_MINI.is_dir():
            pytest.skip("no shared COCO-mini copy")
        target = _coco_targets()
    n = len(ps.labels)
    assert n == {"nuswide10": 186577, "mscoco": 122218}[name]
    assert (ps.labels.sum(1) > 0).all()  # every row labelled
    freq = ps.labels.mean(0)
    assert np.abs(freq - target).max() <= 4 * np.sqrt(0.25 / n)
    assert ps.labels.sum(1).mean() == pytest.approx(target.sum(), abs=0.02)  # cardinality = sum of the frequencies


def test_dense_cosines_positive_sparse_mostly_zero(tmp_path):
    for kind in ("dense", "sparse"):
        assert proxy("nuswide10", "--kind", kind, "--rows", "400", "--to", str(tmp_path / kind)) == 0
    x = load_store(tmp_path / "dense")["retrieval"].inputs["image"][:300]
    assert (x >= 0).all()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert (unit @ unit.T > 0).all()
    zeros = (load_store(tmp_path / "sparse")["retrieval"].inputs["image"] == 0).mean()
    assert 0.77 < zeros < 0.83  # VGG-fc7-like; N(-1.2, 2) before the relu gives 80.2 %


def test_clip_kind_ucmfh_layout(tmp_path):
    assert proxy("mscoco", "--kind", "clip", "--rows", "600", "--to", str(tmp_path / "c")) == 0
    data = load_store(tmp_path / "c")
    assert data.card["feature_widths"] == {"image": 512, "text": 512}
    assert data.card["protocol"]["name"] == "official"
    assert data.card["proxy"]["layout"]["rows_drawn_by"] == "mscoco-scaled-600"
    rows = json.loads((tmp_path / "c" / "proxy_rows.json").read_text())["layout_rows"]
    train, retrieval = data["train"], data["retrieval"]
    # a training row is the same pair as its copy in the retrieval file (same proxy row -> same features)
    where = {r: i for i, r in enumerate(np.asarray(rows)[retrieval.ids])}
    for i, r in enumerate(np.asarray(rows)[train.ids][:20]):
        np.testing.assert_array_equal(train.inputs["image"][i], retrieval.inputs["image"][where[r]])
    img = retrieval.inputs["image"]
    unit = img / np.linalg.norm(img, axis=1, keepdims=True)
    assert 0.3 < float((unit @ unit.T).mean()) < 0.8  # the shared mean direction


def test_same_seed_same_bytes(tmp_path):
    for d, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert proxy("nuswide10", "--kind", "dense", "--rows", "300", "--seed", seed, "--to", str(tmp_path / d)) == 0
    a, b, c = (sha256_dir(tmp_path / d) for d in "abc")
    assert a == b
    assert a["retrieval/image.npy"] != c["retrieval/image.npy"]


@needs_mir
def test_card_says_proxy(mir_dense, capsys):
    card = read_card(mir_dense / "store")
    assert card["name"] == "mirflickr25k-proxy-dense-1000" and card["version"].startswith("PROXY:")
    p = card["proxy"]
    assert p["of"] == "mirflickr25k" and p["kind"] == "dense" and p["statement"].startswith("PROXY:")
    assert p["generator"].startswith("X = relu(L W + 0.5 e)") and p["generator_seed"] == 0
    assert p["label_source"].startswith("real LAll")
    assert main(["data", "info", str(mir_dense / "store")]) == 0
    assert "PROXY" in capsys.readouterr().out


@needs_mir
def test_report_shows_proxy(mir_dense, tmp_path, monkeypatch):
    """A run trained on a proxy store: its record carries the card name, every table and figure says PROXY."""
    import bitrieve.report.figures as figures
    from bitrieve.config import parse_config
    from bitrieve.engine import train_run
    from bitrieve.report.results import load_results
    from bitrieve.report.tables import build_tables, to_markdown

    cfg = parse_config({"method": "toy_linear", "data": str(mir_dense / "store"), "bits": 8, "seed": 0,
                        "tracking": "none", "params": {"epochs": 1, "batch_size": 64, "max_rows": 128},
                        "eval": {"query_limit": 20, "ks": [10]}})
    train_run(cfg, tmp_path / "run", progress=False)
    (run,) = load_results([tmp_path / "run"])
    assert run.record.dataset == "mirflickr25k-proxy-dense-1000"
    assert run.dataset == "mirflickr25k-proxy-dense-1000 (PROXY)"
    (table,) = build_tables([run])
    assert "mirflickr25k-proxy-dense-1000 (PROXY)" in to_markdown(table)
    titles = {}
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: titles.setdefault(stem, fig._suptitle.get_text()))
    figures.plot_curves([run], tmp_path / "fig", "pr")
    assert titles and all("PROXY" in t and "PROXY" in stem for stem, t in titles.items())


@needs_mir
def test_release_layout_round_trip(mir_dense, tmp_path):
    release = mir_dense / "release"
    assert sorted(p.name for p in release.iterdir()) == ["mirflickr25k-iall-vgg.mat", "mirflickr25k-lall.mat",
                                                         "mirflickr25k-yall.mat"]
    # 1,000 rows: the mirflickr25k reader wants the release's 20,015, the prefix-given one reads any size
    assert main(["data", "convert", "--from", "mscoco-mat", "--prefix", "mirflickr25k", str(release),
                 "--split", "mirflickr25k-scaled-1000", "--to", str(tmp_path / "back")]) == 0
    a, b = load_store(mir_dense / "store"), load_store(tmp_path / "back")
    for name, split in a.splits.items():
        for m in ("image", "text"):
            np.testing.assert_array_equal(split.inputs[m], b[name].inputs[m])
        np.testing.assert_array_equal(split.labels, b[name].labels)
        np.testing.assert_array_equal(split.ids, b[name].ids)


def test_clip_release_layout_round_trip(tmp_path):
    assert proxy("nuswide10", "--kind", "clip", "--rows", "500", "--to", str(tmp_path / "c"), "--release-layout",
                 str(tmp_path / "pkl")) == 0
    assert main(["data", "convert", "--from", "ucmfh", str(tmp_path / "pkl"), "--to", str(tmp_path / "back")]) == 0
    a, b = load_store(tmp_path / "c"), load_store(tmp_path / "back")
    assert a.card["counts"] == b.card["counts"]
    for name, split in a.splits.items():
        for m in ("image", "text"):
            np.testing.assert_array_equal(split.inputs[m], b[name].inputs[m])
        np.testing.assert_array_equal(split.labels, b[name].labels)
        np.testing.assert_array_equal(split.ids, b[name].ids)


def test_bad_input_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no-mir"
    assert proxy("mirflickr25k", "--kind", "dense", "--mir", str(missing), "--to", str(tmp_path / "s")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "mirflickr25k-lall.mat" in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()
    assert proxy("nuswide10", "--kind", "dense", "--rows", "0", "--to", str(tmp_path / "s")) == 2
    assert "argument --rows: must be >= 1 (got 0)" in capsys.readouterr().err
    # a full-size NUS-WIDE XAll does not fit a MATLAB v5 file: refused before anything is generated
    assert proxy("nuswide10", "--kind", "dense", "--to", str(tmp_path / "s"), "--release-layout",
                 str(tmp_path / "rel")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 GiB" in err and not (tmp_path / "s").exists()


@pytest.mark.slow
@needs_mir
def test_full_mir_dense_proxy_and_its_release(tmp_path):
    assert proxy("mirflickr25k", "--kind", "dense", "--mir", str(MIR), "--to", str(tmp_path / "s"),
                 "--release-layout", str(tmp_path / "rel")) == 0
    data = load_store(tmp_path / "s")
    assert data.card["name"] == "mirflickr25k-proxy-dense"
    assert data.card["counts"] == {"train": 5000, "query": 2000, "retrieval": 18015}
    assert data.card["protocol"]["name"] == "mirflickr25k"
    # full size: the mirflickr25k reader itself reads the release layout back, with the real split recipe
    assert main(["data", "convert", "--from", "mirflickr25k", str(tmp_path / "rel"), "--to",
                 str(tmp_path / "back")]) == 0
    back = load_store(tmp_path / "back")
    for name, split in data.splits.items():
        for m in ("image", "text"):
            np.testing.assert_array_equal(split.inputs[m], back[name].inputs[m])
        np.testing.assert_array_equal(split.labels, back[name].labels)


def test_scaled_split_recipe_by_name():
    from bitrieve.data.source import Source
    from bitrieve.data.splits import get_split, scaled_sizes
    from bitrieve.data.types import DataError

    assert scaled_sizes("mirflickr25k", 1000) == (100, 250)  # 2,000 / 5,000 of 20,015
    assert scaled_sizes("nuswide10", 1000) == (100, 200)  # the floors
    recipe = get_split("mscoco-scaled-1000")
    assert recipe.name == "mscoco-scaled-1000" and recipe.description.startswith("SCALED")
    labels = np.ones((999, 80), np.uint8)
    with pytest.raises(DataError, match="is for 1000"):
        recipe.split(Source({}, labels, np.arange(999), {"name": "x"}), 0)
    with pytest.raises(DataError, match="unknown split recipe"):
        get_split("wiki-scaled-10")
