"""Readers on the real files in ../shared/data (skipped where absent) and on small files in the exact layouts."""

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bitrieve.data.convert import ConvertOptions, build
from bitrieve.data.readers import read_source
from bitrieve.data.types import DataError

from shared_data import SHARED_DATA as SHARED  # noqa: E402


def need(p: Path):
    return pytest.mark.skipif(not p.exists(), reason=f"{p} not present")


@need(SHARED / "mnist")
def test_mnist_real_test_set():
    src = read_source("mnist", str(SHARED / "mnist"))
    assert len(src) == 10000 and src.official.tolist().count("test") == 10000
    assert src.labels.sum(0).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # SOURCE.md
    px = src.inputs["image"].pixels()
    assert px.shape == (10000, 1, 28, 28) and px.dtype == np.uint8 and px.max() == 255


@need(SHARED / "cifar10-jpg")
def test_cifar10_jpeg_copy_real_zips():
    src = read_source("cifar10-jpg", str(SHARED / "cifar10-jpg"))
    assert len(src) == 60000 and (src.labels.sum(0) == 6000).all()
    assert (src.official == "train").sum() == 50000
    assert len(np.unique(src.ids)) == 60000
    assert "JPEG copy" in src.card["version"]
    img = src.inputs["image"]
    i = img.refs.index("test/truck/0999.jpg")
    assert src.labels[i].argmax() == 9 and src.ids[i] == 50000 + 9 * 1000 + 999
    assert img.load(i).size == (32, 32)


@need(SHARED / "coco-mini")
def test_coco_json_real_coco_mini():
    src = read_source("coco", str(SHARED / "coco-mini"), labels_only=True)
    assert len(src) == 795 and src.labels.shape == (795, 80)  # 400 + 395 captions
    names = src.card["label_names"]
    assert names[0] == "person" and names[79] == "toothbrush"  # category id 90 -> column 79 (ids have gaps)
    inst = json.loads((SHARED / "coco-mini/annotations/instances_train2017.json").read_text())
    img_with_90 = {a["image_id"] for a in inst["annotations"] if a["category_id"] == 90}
    rows = np.isin(src.extras["group"], list(img_with_90))
    assert rows.any() and src.labels[rows, 79].all()
    train = src.official == "train"
    _, first = np.unique(src.extras["group"][train], return_index=True)
    per_image = src.labels[train][first].sum(1)
    assert len(first) == 80 and abs(per_image.mean() - 3.77) < 0.01  # SOURCE.md: mean 3.77 categories/image
    assert (np.bincount(np.unique(src.extras["group"], return_inverse=True)[1]) == 5).all()


@need(SHARED / "coco-mini")
def test_coco_caption_store_tokens(tmp_path):
    out = build("coco", SHARED / "coco-mini", ConvertOptions(image_size=32, vocab_threshold=1, progress=False))
    tr = out.data["train"]
    assert tr.inputs["image"].shape == (400, 3, 32, 32) and tr.inputs["text"].dtype == np.int32
    lengths = tr.extras["text_lengths"]
    assert (tr.inputs["text"][np.arange(400), lengths - 1] == 2).all()  # <end> at length-1, then padding
    assert (tr.inputs["text"][:, 0] == 1).all()
    vocab = out.sidecars["vocab.json"]
    assert vocab[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    q = out.data["query"]
    assert (q.inputs["text"] == 3).sum() > 0  # val words unseen in train map to <unk>: vocab is train-only


@need(SHARED / "flickr8k-captions")
def test_flickr8k_real_splits_keep_only_captioned_names():
    src = read_source("flickr8k", str(SHARED / "flickr8k-captions"))
    imgs = {s: len(np.unique(src.extras["group"][src.official == s])) for s in ("train", "dev", "test")}
    assert imgs == {"train": 6000, "dev": 1000, "test": 1000}
    assert len(src) == 40000 and src.labels.shape == (40000, 0)
    assert not any(n.startswith("e") and "_" not in n[:2] and n[1].isdigit() and len(n) < 12
                   for n in np.unique(src.extras["image_name"]))


@need(SHARED / "mirflickr25k")
def test_mirflickr_real_labels_and_tags():
    src = read_source("mirflickr25k", str(SHARED / "mirflickr25k"), labels_only=True)
    assert src.labels.shape == (20015, 24) and src.inputs["text"].shape == (20015, 1386)
    assert (src.labels.sum(1) > 0).all()  # every row has a label (SOURCE.md)
    assert set(np.unique(src.inputs["text"])) <= {0.0, 1.0}
    from bitrieve.data.splits import get_split

    idx = get_split("mirflickr25k").split(src, 0)  # DJSRH per-label sampler on the real label matrix
    assert {k: len(v) for k, v in idx.items()} == {"train": 5000, "query": 2000, "retrieval": 18015}
    assert len(np.unique(idx["train"])) == 5000 and np.isin(idx["train"], idx["retrieval"]).all()
    with pytest.raises(DataError, match=r"mirflickr25k-iall\.mat \(key IAll.*mirflickr25k-iall-vgg\.mat"):
        read_source("mirflickr25k", str(SHARED / "mirflickr25k"))


@need(SHARED / "wiki")
def test_wiki_original_layout_equals_mat_release():
    raw = read_source("wiki-raw", str(SHARED / "wiki"))
    mat = read_source("wiki", str(SHARED / "wiki" / "wiki_data.mat"))
    for m in ("image", "text"):
        np.testing.assert_array_equal(raw.inputs[m], mat.inputs[m])
    np.testing.assert_array_equal(raw.labels, mat.labels)
    assert raw.card["label_names"][-1] == "warfare" and len(np.unique(raw.extras["image_id"])) == 2866


def _write_mat_family(root: Path, n=30, prefix="toy", raw_images=False):
    import h5py
    import scipy.io

    rng = np.random.default_rng(1)
    labels = (rng.random((n, 5)) < 0.3).astype(np.uint8)
    labels[:, 0] = 1
    scipy.io.savemat(root / f"{prefix}-lall.mat", {"LAll": labels})
    scipy.io.savemat(root / f"{prefix}-yall.mat", {"YAll": (rng.random((n, 7)) < 0.2).astype(np.uint8)})
    imgs = rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8)  # N x H x W x C
    if raw_images:
        with h5py.File(root / f"{prefix}-iall.mat", "w") as f:  # as DJSRH sees it: (N, C, W, H)
            f["IAll"] = imgs.transpose(0, 3, 2, 1)
    return labels, imgs


def test_mat_family_v73_raw_images_and_row_checks(tmp_path):
    labels, imgs = _write_mat_family(tmp_path, raw_images=True)
    src = read_source("mscoco-mat", str(tmp_path), prefix="toy")
    np.testing.assert_array_equal(src.labels, labels)
    px = src.inputs["image"].pixels(progress=False)
    np.testing.assert_array_equal(px, imgs.transpose(0, 3, 1, 2))  # N x C x H x W
    import scipy.io

    scipy.io.savemat(tmp_path / "toy-yall.mat", {"YAll": np.zeros((29, 7), np.uint8)})
    with pytest.raises(DataError, match="row counts disagree.*29"):
        read_source("mscoco-mat", str(tmp_path), prefix="toy")
    scipy.io.savemat(tmp_path / "toy-yall.mat", {"Tags": np.zeros((30, 7), np.uint8)})
    with pytest.raises(DataError, match="no key 'YAll'.*Tags"):
        read_source("mscoco-mat", str(tmp_path), prefix="toy")


def test_nuswide_reader_checks_release_size(tmp_path):
    _write_mat_family(tmp_path, prefix="nus-wide-tc10")
    with pytest.raises(DataError, match="30 rows, the nuswide10 release has 186577"):
        read_source("nuswide10", str(tmp_path), labels_only=True)


def _write_ucmfh(root: Path, sizes=(12, 4, 10)):
    rng = np.random.default_rng(2)
    for name, n in zip(("train", "query", "retrieval"), sizes):
        d = {"image": rng.standard_normal((n, 512)).astype(np.float32),
             "text": rng.standard_normal((n, 512)).astype(np.float32),
             "label": (rng.random((n, 24)) < 0.2).astype(np.int64) | np.eye(24, dtype=np.int64)[rng.integers(0, 24, n)]}
        with open(root / f"{name}.pkl", "wb") as f:
            pickle.dump(d, f)


def test_ucmfh_pickles_through_restricted_unpickler(tmp_path):
    _write_ucmfh(tmp_path)
    out = build("ucmfh", tmp_path, ConvertOptions(progress=False))
    assert out.data.card["counts"] == {"train": 12, "query": 4, "retrieval": 10}
    assert out.data["train"].inputs["image"].shape == (12, 512)
    with open(tmp_path / "train.pkl", "rb") as f:
        ref = pickle.load(f)  # test-only: reading the file this test just wrote
    np.testing.assert_array_equal(out.data["train"].inputs["text"], ref["text"])


def test_ucmfh_malicious_pickle_is_refused(tmp_path):
    import os

    _write_ucmfh(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    with open(tmp_path / "query.pkl", "wb") as f:
        pickle.dump({"image": Evil(), "text": [], "label": []}, f)
    with pytest.raises(DataError, match=r"query\.pkl: refused to unpickle global '(posix|os|nt)\.system'"):
        read_source("ucmfh", str(tmp_path))
    assert not marker.exists()


def test_cifar_python_batches_layout(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(3)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"batch_label": name.encode(), b"labels": list(rng.integers(0, 10, 20).tolist()),
             b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * 20}
        batches[name] = d
        with open(root / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    src = read_source("cifar10-python", str(tmp_path))
    assert len(src) == 120 and (src.official == "test").sum() == 20
    px = src.inputs["image"].pixels()
    np.testing.assert_array_equal(px[100], batches["test_batch"][b"data"][0].reshape(3, 32, 32))
    assert src.labels[100].argmax() == batches["test_batch"][b"labels"][0]


def test_karpathy_json_layout(tmp_path):
    d = {"dataset": "flickr30k", "images": [
        {"filename": f"{i}.jpg", "imgid": i, "split": s,
         "sentences": [{"tokens": ["a", "dog", str(k)], "raw": f"A dog {k}.", "sentid": i * 5 + k} for k in range(5)]}
        for i, s in enumerate(["train", "train", "restval", "val", "test", "test"])]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(d))
    out = build("karpathy", tmp_path / "dataset_flickr30k.json", ConvertOptions(vocab_threshold=1, progress=False))
    assert out.data.card["counts"] == {"train": 15, "query": 10, "retrieval": 10, "dev": 5}
    assert out.data["query"].extras["group"].tolist() == [4] * 5 + [5] * 5


def test_image_folder_with_class_folders(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("RGB", (10, 12), (i * 40, 0, 0)).save(tmp_path / c / f"{i}.png")
    src = read_source("image-folder", str(tmp_path))
    assert src.card["label_names"] == ["cat", "dog"] and src.labels.sum(0).tolist() == [3, 3]
    assert src.inputs["image"].pixels(progress=False).shape == (6, 3, 12, 10)


def _zip_cifar_like(root: Path):
    from io import BytesIO
    from PIL import Image

    for split, per in (("train", 3), ("test", 1)):
        with zipfile.ZipFile(root / f"cifar10_{split}_jpg.zip", "w") as z:
            for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
                for k in range(per):
                    b = BytesIO()
                    Image.new("RGB", (32, 32), (k * 50, 10, 10)).save(b, format="JPEG")
                    z.writestr(f"{split}/{c}/{k:04d}.jpg", b.getvalue())


def test_cifar_jpg_rejects_unexpected_member(tmp_path):
    _zip_cifar_like(tmp_path)
    with zipfile.ZipFile(tmp_path / "cifar10_test_jpg.zip", "a") as z:
        z.writestr("test/unicorn/0000.jpg", b"x")
    with pytest.raises(DataError, match="unexpected member 'test/unicorn/0000.jpg'"):
        read_source("cifar10-jpg", str(tmp_path))
