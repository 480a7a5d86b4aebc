"""Canonical store: round trip, no pickles, atomic writes, card contents, CLI convert/info on real Wiki."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitrieve.cli import main
from bitrieve.data import load_data
from bitrieve.data.extras import SplitWithExtras
from bitrieve.data.store import load_store, save_store
from bitrieve.data.types import CrossModalData, DataError, Split

from shared_data import SHARED_DATA  # noqa: E402

WIKI_MAT = SHARED_DATA / "wiki" / "wiki_data.mat"


def _tiny() -> CrossModalData:
    rng = np.random.default_rng(0)
    def split(n, off):
        return SplitWithExtras({"image": rng.random((n, 5), dtype=np.float32),
                                "text": rng.integers(0, 9, (n, 4)).astype(np.int32)},
                               np.eye(3, dtype=np.uint8)[rng.integers(0, 3, n)], np.arange(off, off + n),
                               {"group": np.arange(n) // 2, "caption": np.array([f"c{i}" for i in range(n)])})
    return CrossModalData({"train": split(6, 0), "query": split(3, 100), "retrieval": split(4, 200)},
                          {"name": "tiny", "label_names": ["a", "b", "c"]})


def test_round_trip_exact_and_pickle_free(tmp_path):
    data = _tiny()
    save_store(data, tmp_path / "s", split_indices={"train": np.arange(6)})
    back = load_store(tmp_path / "s")
    for name, split in data.splits.items():
        got = back[name]
        for m in split.inputs:
            assert got.inputs[m].dtype == split.inputs[m].dtype
            np.testing.assert_array_equal(got.inputs[m], split.inputs[m])
        np.testing.assert_array_equal(got.labels, split.labels)
        np.testing.assert_array_equal(got.ids, split.ids)
        np.testing.assert_array_equal(got.extras["group"], split.extras["group"])
        np.testing.assert_array_equal(got.extras["caption"], split.extras["caption"])
    npy = sorted((tmp_path / "s").glob("*/*.npy"))
    assert len(npy) == 3 * 6  # image, text, labels, ids, extra.group, extra.caption per split
    for f in npy:
        assert np.load(f, allow_pickle=False).dtype != object  # raises if anything needs pickle
    card = json.loads((tmp_path / "s" / "card.json").read_text())
    assert card["store_format"] == 2
    assert card["counts"] == {"train": 6, "query": 3, "retrieval": 4}
    assert card["feature_widths"] == {"image": 5, "text": 4}
    assert set(card["store_files_sha256"]) == {str(f.relative_to(tmp_path / "s")) for f in npy} | {"split_indices.npz"}


def test_verify_detects_a_changed_file(tmp_path):
    save_store(_tiny(), tmp_path / "s")
    load_store(tmp_path / "s", verify=True)["query"].inputs["text"]
    np.save(tmp_path / "s" / "query" / "text.npy", np.load(tmp_path / "s" / "query" / "text.npy") + 1)
    data = load_store(tmp_path / "s", verify=True)  # ids and labels verified; text only when used
    with pytest.raises(DataError, match=r"query/text\.npy: sha256 differs"):
        data["query"].inputs["text"]


def test_old_format_1_store_still_loads(tmp_path):
    data = _tiny()
    save_store(data, tmp_path / "old", store_format=1)
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["card.json", "query.npz", "retrieval.npz",
                                                                       "train.npz"]
    back = load_store(tmp_path / "old")
    for name, split in data.splits.items():
        np.testing.assert_array_equal(back[name].inputs["image"], split.inputs["image"])
        np.testing.assert_array_equal(back[name].extras["caption"], split.extras["caption"])
    np.savez(tmp_path / "old" / "query.npz", **dict(np.load(tmp_path / "old" / "retrieval.npz")))
    with pytest.raises(DataError, match=r"query\.npz: sha256 differs"):
        load_store(tmp_path / "old")
    assert main(["data", "info", str(tmp_path / "old")]) == 0


def test_lazy_store_reads_and_verifies_only_what_is_used(tmp_path, monkeypatch):
    import bitrieve.data.store as store

    save_store(_tiny(), tmp_path / "s")
    hashed, opened = [], []
    real_sha, real_read = store.sha256_file, store.read_npy
    monkeypatch.setattr(store, "sha256_file", lambda f: hashed.append(Path(f).relative_to(tmp_path / "s").as_posix())
                        or real_sha(f))
    monkeypatch.setattr(store, "read_npy", lambda f, k, mmap=True: opened.append(k) or real_read(f, k, mmap))
    store._VERIFIED.clear()
    data = load_store(tmp_path / "s", splits=("query", "retrieval"))
    assert sorted(hashed) == ["query/ids.npy", "query/labels.npy", "retrieval/ids.npy", "retrieval/labels.npy"]
    x = data["retrieval"].inputs["image"]
    assert isinstance(x, np.memmap) and not x.flags.writeable  # memory-mapped, read-only: a reader never writes
    assert hashed[-1] == "retrieval/image.npy" and "text" not in opened and "extra.caption" not in opened
    data["retrieval"].inputs["image"]
    load_store(tmp_path / "s", splits=("retrieval",))["retrieval"].inputs["image"]  # another open, same process
    assert hashed.count("retrieval/image.npy") == 1 and hashed.count("retrieval/ids.npy") == 1  # hashed once


def test_binary_tags_stay_uint8_in_the_store_and_widen_per_slice(tmp_path):
    from bitrieve.data.store import WidenedArray, in_memory

    rng = np.random.default_rng(1)
    tags = (rng.random((7, 5)) < 0.3).astype(np.uint8)
    pixels = rng.integers(0, 256, (7, 1, 2, 2)).astype(np.uint8)
    split = Split({"text": tags, "image": pixels}, np.eye(2, dtype=np.uint8)[rng.integers(0, 2, 7)], np.arange(7))
    save_store(CrossModalData({"train": split}, {"name": "t"}), tmp_path / "s")
    stored = np.load(tmp_path / "s" / "train" / "text.npy")
    assert stored.dtype == np.uint8 and stored.nbytes == 35
    card = json.loads((tmp_path / "s" / "card.json").read_text())
    assert card["widened_on_load"] == ["text"] and card["input_dtypes"] == {"image": "uint8", "text": "float32"}
    t = load_store(tmp_path / "s")["train"].inputs["text"]
    assert isinstance(t, WidenedArray) and t.shape == (7, 5) and t.dtype == np.float32
    assert t[2:4].dtype == np.float32 and np.array_equal(t[2:4], tags[2:4].astype(np.float32))
    assert np.array_equal(np.asarray(t), tags.astype(np.float32))
    assert load_store(tmp_path / "s")["train"].inputs["image"].dtype == np.uint8  # pixels are not widened
    mem = in_memory(load_store(tmp_path / "s")["train"])
    assert type(mem.inputs["text"]) is np.ndarray and mem.inputs["text"].dtype == np.float32
    save_store(load_store(tmp_path / "s"), tmp_path / "again")  # a loaded store written again stays narrow
    assert np.load(tmp_path / "again" / "train" / "text.npy").dtype == np.uint8
    save_store(load_store(tmp_path / "s"), tmp_path / "old", store_format=1)  # format 1 knows no widening
    old = load_store(tmp_path / "old")["train"].inputs["text"]
    assert type(old) is np.ndarray and old.dtype == np.float32 and np.array_equal(old, tags)


def test_train_inputs_widen_tags_per_batch_exactly(tmp_path):
    import torch

    from bitrieve.engine.epochs import TrainInputs

    rng = np.random.default_rng(2)
    tags = (rng.random((9, 4)) < 0.5).astype(np.uint8)
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 9)]
    save_store(CrossModalData({"train": Split({"text": tags}, labels, np.arange(9))}, {"name": "t"}), tmp_path / "s")

    class M:
        supervised, modalities = True, ("text",)

    inputs = TrainInputs(load_store(tmp_path / "s")["train"], M(), torch.device("cpu"))
    assert inputs.tensors["text"].dtype == torch.uint8  # the train split is held as stored
    b = inputs.batch(torch.tensor([4, 0, 8]))
    assert b["text"].dtype == torch.float32 and b["label"].dtype == torch.float32
    np.testing.assert_array_equal(b["text"].numpy(), tags[[4, 0, 8]].astype(np.float32))
    np.testing.assert_array_equal(b["label"].numpy(), labels[[4, 0, 8]].astype(np.float32))


def test_refuses_existing_and_interrupted_write_leaves_no_store(tmp_path, monkeypatch):
    data = _tiny()
    save_store(data, tmp_path / "s")
    with pytest.raises(DataError, match="already exists"):
        save_store(data, tmp_path / "s")
    import bitrieve.data.store as store

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(store, "write_json_atomic", boom)  # dies just before card.json
    with pytest.raises(KeyboardInterrupt):
        save_store(data, tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert not list(tmp_path.glob(".t.partial-*"))
    with pytest.raises(KeyboardInterrupt):  # an interrupted overwrite keeps the old, complete store
        save_store(data, tmp_path / "s", overwrite=True)
    assert load_store(tmp_path / "s")["query"].ids.tolist() == [100, 101, 102]


def test_incomplete_directory_is_rejected(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train").mkdir()
    np.save(tmp_path / "half" / "train" / "ids.npy", np.arange(3))
    with pytest.raises(DataError, match="no card.json"):
        load_store(tmp_path / "half")


def test_row_count_mismatch_with_card_is_an_error(tmp_path):
    save_store(_tiny(), tmp_path / "s")
    card = json.loads((tmp_path / "s" / "card.json").read_text())
    card["counts"]["query"] = 5
    (tmp_path / "s" / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="card.json says 5"):
        load_store(tmp_path / "s")


@pytest.mark.skipif(not WIKI_MAT.is_file(), reason="real Wiki file not present")
def test_cli_convert_and_info_real_wiki(tmp_path, capsys):
    out = tmp_path / "wiki"
    assert main(["data", "convert", "--from", "wiki", str(WIKI_MAT), "--to", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(out), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["counts"] == {"train": 2173, "query": 693, "retrieval": 2173}
    assert card["sha256"]["wiki_data.mat"] == "8167d490086054087b6e39fddad51402e3c1c5bd19f1470ee4c7f04744cb51b6"
    assert card["protocol"]["name"] == "wiki" and card["feature_widths"] == {"image": 128, "text": 10}
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "label_cardinality" in text and '"warfare": 104' in text  # query class balance (SOURCE.md: 104)
    d = load_data(str(out))
    ref = load_data("wiki")
    np.testing.assert_array_equal(d["query"].inputs["image"], ref["query"].inputs["image"])
    np.testing.assert_array_equal(d["train"].labels, ref["train"].labels)
    assert main(["data", "convert", "--from", "wiki", str(WIKI_MAT), "--to", str(out)]) == 2  # exists


def test_cli_module_entry_point_reports_missing_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bitrieve", "data", "convert", "--from", "mnist", str(tmp_path),
                        "--to", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "t10k-images-idx3-ubyte" in r.stderr


@pytest.mark.skipif(not (SHARED_DATA / "flickr8k-captions").is_dir(), reason="Flickr8k captions absent")
def test_flickr8k_caption_store_and_info(tmp_path, capsys):
    out = tmp_path / "f8"
    assert main(["data", "convert", "--from", "flickr8k", str(SHARED_DATA / "flickr8k-captions"), "--to", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(out), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["counts"] == {"train": 30000, "query": 5000, "retrieval": 5000, "dev": 5000}
    vocab = json.loads((out / "vocab.json").read_text())
    assert card["features"]["text"]["vocab_size"] == len(vocab) and vocab[3] == "<unk>"
    d = load_store(out)
    q = d["query"]
    assert q.inputs["text"].dtype == np.int32 and len(np.unique(q.extras["group"])) == 1000
    assert main(["data", "info", str(out)]) == 0  # 0 label columns still prints
