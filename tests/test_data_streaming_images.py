"""Raw-image releases convert in row chunks (issue 21, item 3): pixels are decoded a block at a time and written into
each split's ``image.npy`` (data/images.py `PixelRows`, data/store.py `stream_selections`), never as one array of
all the images. For a tiny synthetic release of every pixel format the store must hold exactly the pixels of an
independent reference: each image decoded here with PIL (or taken from the raw bytes the test wrote), keyed by the
row id the format defines, compared with the rows of every split."""

import gzip
import json
import pickle
import zipfile
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from bitrieve.cli import main

RNG = np.random.default_rng(11)
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _random_image(h, w, mode="RGB"):
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8), mode)


def _ref(im, size=None):
    """The reference decoding: RGB, bilinear resize to size x size, C x H x W."""
    im = im.convert("RGB")
    if size is not None:
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im).transpose(2, 0, 1)


def _file_ref(path, size=None):
    with Image.open(path) as im:
        return _ref(im, size)


# Each release maker writes the release under ``root`` and returns (convert arguments, {row id: C x H x W pixels}).

def _image_folder(root):  # sizes and modes differ: resized to 9 x 9
    (root / "splits.txt").parent.mkdir(parents=True, exist_ok=True)
    rels = []
    for c in ("cat", "dog"):
        (root / c).mkdir()
        for i in range(7):
            _random_image(8 + i, 11, "L" if i == 2 else "RGB").save(root / c / f"{i}.png")
            rels.append(f"{c}/{i}.png")
    rels.sort()
    (root / "splits.txt").write_text("".join(f"{r}\t{('train', 'query', 'retrieval')[k % 3]}\n"
                                             for k, r in enumerate(rels)))
    return ["--from", "image-folder", str(root), "--image-size", "9"], \
        {k: _file_ref(root / r, 9) for k, r in enumerate(rels)}


def _cifar_jpg(root):  # JPEG members of two zips, no resize
    root.mkdir()
    ref = {}
    for s, per, base in (("train", 2, 0), ("test", 1, 50000)):
        with zipfile.ZipFile(root / f"cifar10_{s}_jpg.zip", "w") as z:
            for c, name in enumerate(CIFAR):
                for k in range(per):
                    b = BytesIO()
                    _random_image(32, 32).save(b, format="JPEG")
                    z.writestr(f"{s}/{name}/{k:04d}.jpg", b.getvalue())
                    ref[base + c * (5000 if s == "train" else 1000) + k] = _ref(Image.open(BytesIO(b.getvalue())))
    return ["--from", "cifar10-jpg", str(root), "--split", "cifar10-dsh"], ref


def _cifar_python(root):  # in-memory uint8 arrays: taken as they are
    root.mkdir()
    ref, row = {}, 0
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, (6, 3072), dtype=np.uint8)
        with open(root / name, "wb") as f:
            pickle.dump({b"labels": list(range(6)), b"data": data}, f, protocol=2)  # test-only: writing the release
        for r in data:
            ref[row] = r.reshape(3, 32, 32)
            row += 1
    return ["--from", "cifar10-python", str(root), "--split", "cifar10-dsh"], ref


def _mnist(root):  # grey arrays: one channel kept
    root.mkdir()
    ref = {}
    for s, n, base in (("train", 20, 0), ("t10k", 10, 20)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        with gzip.open(root / f"{s}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"".join(v.to_bytes(4, "big") for v in (2051, n, 28, 28)) + x.tobytes())
        with gzip.open(root / f"{s}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"".join(v.to_bytes(4, "big") for v in (2049, n)) + (np.arange(n) % 10).astype(np.uint8).tobytes())
        ref.update({base + i: x[i][None] for i in range(n)})
    return ["--from", "mnist", str(root), "--split", "cifar10-dsh"], ref


def _mat_iall(root):  # the DCMH/DJSRH layout: IAll in a v7.3 file, h5py sees (N, C, W, H)
    import h5py
    import scipy.io

    root.mkdir()
    n = 203
    labels = (RNG.random((n, 4)) < 0.3).astype(np.uint8)
    labels[:, 0] = 1
    scipy.io.savemat(root / "toy-lall.mat", {"LAll": labels})
    scipy.io.savemat(root / "toy-yall.mat", {"YAll": (RNG.random((n, 6)) < 0.3).astype(np.uint8)})
    iall = RNG.integers(0, 256, (n, 3, 7, 5), dtype=np.uint8)
    with h5py.File(root / "toy-iall.mat", "w") as f:
        f["IAll"] = iall
    return ["--from", "mscoco-mat", str(root), "--prefix", "toy", "--split", "mscoco-scaled-203"], \
        {i: iall[i].transpose(0, 2, 1) for i in range(n)}


def _coco(root):  # caption rows repeat their image (3 or 5 captions each)
    ann = root / "annotations"
    ann.mkdir(parents=True)
    ref, cid = {}, 0
    for s, n in (("train", 5), ("val", 3)):
        images, caps, inst = [], [], []
        (root / f"{s}2017").mkdir()
        for i in range(n):
            iid = (1 if s == "train" else 100) + i
            f = root / f"{s}2017" / f"{iid:012d}.jpg"
            _random_image(12 + i, 10).save(f, format="JPEG")
            images.append({"id": iid, "file_name": f.name})
            for _ in range(3 if i % 2 else 5):
                cid += 1
                caps.append({"image_id": iid, "id": cid, "caption": f"a photo {cid % 4}"})
                ref[cid] = _file_ref(f, 8)
            inst.append({"id": 1000 + iid, "image_id": iid, "category_id": 1 + i % 2})
        (ann / f"captions_{s}2017.json").write_text(json.dumps({"images": images, "annotations": caps}))
        (ann / f"instances_{s}2017.json").write_text(json.dumps(
            {"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "annotations": inst}))
    return ["--from", "coco", str(root), "--image-size", "8", "--vocab-threshold", "1"], ref


def _karpathy(root):
    (root / "imgs").mkdir(parents=True)
    ims, ref = [], {}
    for i, s in enumerate(["train", "train", "restval", "val", "test", "test"]):
        _random_image(9, 9).save(root / "imgs" / f"{i}.png")
        ims.append({"filename": f"{i}.png", "imgid": i, "split": s, "sentences": [
            {"tokens": ["a", str(k)], "raw": f"a {k}", "sentid": i * 5 + k} for k in range(5)]})
        ref.update({i * 5 + k: _file_ref(root / "imgs" / f"{i}.png") for k in range(5)})
    (root / "dataset_flickr30k.json").write_text(json.dumps({"dataset": "flickr30k", "images": ims}))
    return ["--from", "karpathy", str(root / "dataset_flickr30k.json"), "--images", str(root / "imgs"),
            "--vocab-threshold", "1"], ref


def _flickr8k(root):
    (root / "imgs").mkdir(parents=True)
    names = [f"im{i}.jpg" for i in range(7)]
    ref = {}
    for i, name in enumerate(names):
        _random_image(10, 8 + i).save(root / "imgs" / name, format="JPEG")
        ref.update({i * 5 + k: _file_ref(root / "imgs" / name, 6) for k in range(5)})
    (root / "Flickr8k.token.txt").write_text("".join(f"{n}#{k}\twords {i} {k}\n" for i, n in enumerate(names)
                                                     for k in range(5)))
    for s, sel in (("train", names[:3]), ("dev", names[3:5]), ("test", names[5:])):
        (root / f"Flickr_8k.{s}Images.txt").write_text("\n".join(sel) + "\n")
    return ["--from", "flickr8k", str(root), "--images", str(root / "imgs"), "--image-size", "6",
            "--vocab-threshold", "1"], ref


RELEASES = {"image-folder": _image_folder, "cifar10-jpg": _cifar_jpg, "cifar10-python": _cifar_python,
            "mnist": _mnist, "mscoco-mat (IAll)": _mat_iall, "coco": _coco, "karpathy": _karpathy,
            "flickr8k": _flickr8k}


@pytest.mark.parametrize("fmt", list(RELEASES))
def test_chunked_pixel_store_equals_an_independent_decoding(tmp_path, monkeypatch, fmt):
    import bitrieve.data.store as store
    from bitrieve.data.images import ImageSource, PixelRows

    args, ref = RELEASES[fmt](tmp_path / "rel")
    monkeypatch.setattr(store, "STREAM_BLOCK_BYTES", 1)  # one image per block: the most chunks
    whole = []
    monkeypatch.setattr(ImageSource, "pixels", lambda *a, **k: whole.append(1))  # the all-at-once path: unused
    reads = []
    real = PixelRows.read_rows
    monkeypatch.setattr(PixelRows, "read_rows", lambda self, a, b: reads.append(b - a) or real(self, a, b))
    assert main(["data", "convert", *args, "--to", str(tmp_path / "s"), "--no-progress"]) == 0
    assert not whole and set(reads) == {1}
    idx = np.load(tmp_path / "s" / "split_indices.npz")
    assert len(reads) == len({v.tobytes() for v in ref.values()})  # each distinct image decoded once
    card = json.loads((tmp_path / "s" / "card.json").read_text())
    assert card["stored_dtypes"]["image"] == "uint8" and card["features"]["image"]["kind"] == "pixels"
    for name in card["counts"]:
        ids = np.load(tmp_path / "s" / name / "ids.npy")
        image = np.load(tmp_path / "s" / name / "image.npy")
        assert image.dtype == np.uint8 and len(image) == len(ids) == len(idx[name]) > 0
        np.testing.assert_array_equal(image, np.stack([ref[int(i)] for i in ids]), err_msg=f"{fmt} {name}")
    assert main(["data", "verify", str(tmp_path / "s")]) == 0


def test_block_size_bounds_what_is_decoded_at_once(tmp_path, monkeypatch):
    """With the default block (32 MiB of source rows at 4 bytes per value), 3 x 224 x 224 images are decoded 55 at a
    time; here a block of 4 images: every decode call but the last holds exactly 4."""
    import bitrieve.data.store as store
    from bitrieve.data.images import PixelRows

    args, ref = _mat_iall(tmp_path / "rel")
    monkeypatch.setattr(store, "STREAM_BLOCK_BYTES", 3 * 7 * 5 * 4 * 4)
    reads = []
    real = PixelRows.read_rows
    monkeypatch.setattr(PixelRows, "read_rows", lambda self, a, b: reads.append(b - a) or real(self, a, b))
    assert main(["data", "convert", *args, "--to", str(tmp_path / "s"), "--no-progress"]) == 0
    assert max(reads) == 4 and sum(reads) == len(ref) and reads[:-1] == [4] * (len(reads) - 1)


def test_images_of_different_sizes_without_image_size_is_one_line(tmp_path, capsys):
    args, _ = _flickr8k(tmp_path / "rel")
    args = args[:args.index("--image-size")] + args[args.index("--image-size") + 2:]
    assert main(["data", "convert", *args, "--to", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "image 'im1.jpg' has shape (3, 10, 9), earlier images (3, 10, 8)" in err, err
    assert "--image-size" in err and not (tmp_path / "s").exists()  # nothing half-written


def test_extracted_features_of_caption_rows_follow_their_image(tmp_path):
    """The extractor path: each distinct image extracted once, every caption row gets its image's features."""
    from bitrieve.data.convert import ConvertOptions, build
    from bitrieve.data.store import save_store

    class MeanColour:  # a stand-in extractor: the mean of each channel
        name, dim = "mean-colour", 3

        def describe(self):
            return {"kind": "features", "extractor": self.name, "dim": 3}

        def __call__(self, images):
            return np.stack([np.asarray(im, np.float64).mean((0, 1)) for im in images])

    args, ref = _karpathy(tmp_path / "rel")
    out = build("karpathy", args[2], ConvertOptions(extractor=MeanColour(), work_dir=tmp_path / "w", progress=False,
                                                    vocab_threshold=1, reader_options={"images": args[4]}))
    save_store(out.data, tmp_path / "s", split_indices=out.split_indices, sidecars=out.sidecars)
    for name in out.data.card["counts"]:
        ids = np.load(tmp_path / "s" / name / "ids.npy")
        np.testing.assert_allclose(np.load(tmp_path / "s" / name / "image.npy"),
                                   np.stack([ref[int(i)].mean((1, 2)) for i in ids]), rtol=1e-6)
