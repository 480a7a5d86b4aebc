"""End to end through the engine: DSH, GreedyHash (feature mode) and VSE++ (GRU text) train one epoch on tiny stores
written by the test, and produce results.json with the expected task and metric keys."""

import json

import numpy as np
import pytest

from bitrieve.config import parse_config
from bitrieve.data.extras import SplitWithExtras
from bitrieve.data.store import save_store
from bitrieve.data.types import CrossModalData, Split
from bitrieve.engine import train_run


def _image_store(path, shape, n=60, classes=3):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    if len(shape) == 3:
        x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    else:
        x = (rng.normal(size=(n, *shape)) + y[:, None] * 2).astype(np.float32)
    lab = np.eye(classes, dtype=np.uint8)[y]
    split = Split({"image": x}, lab, np.arange(n, dtype=np.int64))
    data = CrossModalData({"train": split, "query": split.subset(np.arange(12)), "retrieval": split},
                          {"name": "tiny", "protocol": "test"})
    return save_store(data, path)


def _caption_store(path, n_img=12, per=2, vocab=15):
    rng = np.random.default_rng(0)
    n = n_img * per
    group = np.repeat(np.arange(n_img), per)
    img = rng.normal(size=(n_img, 8)).astype(np.float32)[group]
    tokens = np.zeros((n, 6), dtype=np.int32)
    for i in range(n):
        length = 3 + i % 3
        tokens[i, :length] = rng.integers(4, vocab, length)
    lab = np.eye(4, dtype=np.uint8)[group % 4]
    split = SplitWithExtras({"image": img, "text": tokens}, lab, np.arange(n, dtype=np.int64),
                            {"group": group.astype(np.int64), "text_lengths": (tokens > 0).sum(1).astype(np.int32)})
    card = {"name": "tiny-captions", "protocol": "test",
            "features": {"text": {"kind": "tokens", "pad_id": 0, "vocab_size": vocab}}}
    data = CrossModalData({"train": split, "query": split, "retrieval": split}, card)
    return save_store(data, path)


@pytest.mark.parametrize("method,params,kind", [
    ("dsh", {"epochs": 1, "batch_size": 20}, "pixels"),
    ("greedyhash", {"backbone": "identity", "epochs": 1, "batch_size": 16}, "features"),
    ("vsepp", {"epochs": 1, "batch_size": 8, "embed_dim": 16, "word_dim": 8}, "captions"),
])
def test_one_epoch_through_the_engine(tmp_path, method, params, kind):
    if kind == "pixels":
        store = _image_store(tmp_path / "store", (3, 32, 32))
    elif kind == "features":
        store = _image_store(tmp_path / "store", (10,))
    else:
        store = _caption_store(tmp_path / "store")
    cfg = parse_config({"method": method, "data": str(store), "bits": 8, "device": "cpu", "tracking": "none",
                        "params": params, "eval": {"tasks": ["i2t", "t2i"], "ks": [5]}})
    res = train_run(cfg, tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["method"] == method and on_disk["bits"] == 8
    if method == "vsepp":
        assert {"r@1", "r@5", "r@10", "rsum"} <= set(res["metrics"]["i2t"]) and "t2i" in res["metrics"]
    else:
        assert set(res["metrics"]) == {"i2i"} and 0.0 < res["metrics"]["i2i"]["map@all"] <= 1.0
