"""`bitrieve index build` + `bitrieve search` end to end with real run directories over the embedded Wiki data.

The runs hold an untrained ``toy_linear`` model (the engine's test method) written the way the engine writes runs
(config.yaml + checkpoint.safetensors); the index does not care whether the weights were trained.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bitrieve.cli import main
from bitrieve.config import RunConfig, dump_config
from bitrieve.data import load_data
from bitrieve.index import BinaryIndex
from bitrieve.index import model as index_model


def _make_run(run_dir, seed: int, bits: int = 16):
    from bitrieve.checkpoint import save_checkpoint
    from bitrieve.engine.loading import build_method

    cfg = RunConfig(method="toy_linear", data="wiki", bits=bits, seed=seed, tracking="none")
    method = build_method(cfg, load_data("wiki"))
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    save_checkpoint(run_dir, method, None, {"stage": 0, "epoch": 0})
    return method


def _codes(method, modality, x):
    with torch.no_grad():
        return method.encode(modality, torch.from_numpy(x)).numpy() >= 0  # the engine's sign: >= 0 -> 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return tmp, {"a": _make_run(tmp / "a", seed=0), "b": _make_run(tmp / "b", seed=1)}


def test_build_and_search_end_to_end(runs, tmp_path, capsys):
    tmp, models = runs
    out = tmp_path / "idx"
    assert main(["index", "build", "--run", str(tmp / "a"), "--data", "wiki", "--modality", "image",
                 "--out", str(out), "--chunk", "500"]) == 0
    loaded_cfg, loaded = index_model.load_run_model(tmp / "a")
    assert index_model.model_hash(loaded) == index_model.model_hash(models["a"])
    index = BinaryIndex.load(out, expected_model_hash=index_model.model_hash(models["a"]))
    data = load_data("wiki")
    db = data["retrieval"]
    assert len(index) == len(db) and index.meta["modality"] == "image" and index.meta["method"] == "toy_linear"
    # chunked encoding from the loaded run == encoding everything at once with the original model
    ref = BinaryIndex.build(_codes(models["a"], "image", db.inputs["image"]), db.ids)
    np.testing.assert_array_equal(index.codes.words, ref.codes.words)
    capsys.readouterr()

    # text queries (cross-modal) by id, JSON output, against a direct search
    qids = data["query"].ids[:3]
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", ",".join(map(str, qids)),
                 "--modality", "text", "-k", "7", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    direct = ref.search(_codes(models["a"], "text", data["query"].inputs["text"][:3]), 7)
    assert [g["ids"] for g in got] == direct.ids.tolist()
    assert [g["hamming"] for g in got] == direct.distances.tolist()

    # the same queries from a features file, table output
    feats = tmp_path / "q.npy"
    np.save(feats, data["query"].inputs["text"][:3])
    assert main(["search", str(out), "--run", str(tmp / "a"), "--features", str(feats), "--modality", "text",
                 "-k", "7"]) == 0
    table = capsys.readouterr().out
    assert table.count("hamming") == 3 and f"{direct.ids[0, 0]:>10}  {direct.distances[0, 0]:>7}" in table

    assert main(["index", "info", str(out)]) == 0
    assert "files verified" in capsys.readouterr().out


def test_search_refuses_another_model_and_unknown_ids(runs, tmp_path, capsys):
    tmp, _ = runs
    out = tmp_path / "idx"
    assert main(["index", "build", "--run", str(tmp / "a"), "--modality", "text", "--out", str(out),
                 "--backend", "faiss-flat"]) == 0
    capsys.readouterr()
    assert main(["search", str(out), "--run", str(tmp / "b"), "--ids", "0"]) == 2
    assert "is not the model that encoded this index" in capsys.readouterr().err
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", "999999"]) == 2
    assert "id 999999 is in no split" in capsys.readouterr().err
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", "0", "-k", "3"]) == 0
    assert capsys.readouterr().out.count("\n") == 5  # header line, column line, 3 results


@pytest.mark.slow
def test_trained_run_end_to_end(tmp_path, capsys):
    """A real (1-epoch) engine run: build an index of its image codes, query with text, compare with direct codes."""
    from bitrieve.engine import train_run

    run = tmp_path / "run"
    train_run(RunConfig(method="toy_linear", data="wiki", bits=32, params={"epochs": 1}, tracking="none"), run,
              progress=False)
    out = tmp_path / "idx"
    assert main(["index", "build", "--run", str(run), "--modality", "image", "--out", str(out)]) == 0
    _, method = index_model.load_run_model(run)
    data = load_data("wiki")
    direct = BinaryIndex.build(_codes(method, "image", data["retrieval"].inputs["image"]), data["retrieval"].ids)
    expect = direct.search(_codes(method, "text", data["query"].inputs["text"][:5]), 10)
    capsys.readouterr()
    qids = ",".join(map(str, data["query"].ids[:5]))
    assert main(["search", str(out), "--run", str(run), "--ids", qids, "--modality", "text", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [g["ids"] for g in got] == expect.ids.tolist()


def test_index_add_radius_search_and_labels(runs, tmp_path, capsys):
    """`index add` appends a split (atomically, verified, refusing ids already there); `search --radius` returns every
    item within the distance; results carry the items' label names from the data."""
    tmp, models = runs
    out = tmp_path / "idx"
    assert main(["index", "build", "--run", str(tmp / "a"), "--modality", "image", "--out", str(out)]) == 0
    assert main(["index", "add", str(out), "--run", str(tmp / "a"), "--split", "query"]) == 0
    assert "2173 -> 2866 items, files verified" in capsys.readouterr().out
    data = load_data("wiki")
    index = BinaryIndex.load(out, expected_model_hash=index_model.model_hash(models["a"]))
    both = np.concatenate([data["retrieval"].inputs["image"], data["query"].inputs["image"]])
    np.testing.assert_array_equal(index.codes.words, BinaryIndex.build(_codes(models["a"], "image", both),
                                                                       np.arange(len(both))).codes.words)
    np.testing.assert_array_equal(index.ids, np.concatenate([data["retrieval"].ids, data["query"].ids]))
    assert index.meta["added"] == [{"data": "wiki", "split": "query", "modality": "image", "count": 693}]
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert main(["index", "add", str(out), "--run", str(tmp / "a"), "--split", "query"]) == 2
    assert "already in the index" in capsys.readouterr().err
    assert main(["index", "add", str(out), "--run", str(tmp / "b"), "--split", "train"]) == 2
    assert "is not the model that encoded this index" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before  # refused: nothing rewritten

    qid = int(data["query"].ids[5])
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", str(qid), "--modality", "text",
                 "--radius", "3", "--json"]) == 0
    (got,) = json.loads(capsys.readouterr().out)
    q = _codes(models["a"], "text", data["query"].inputs["text"][5:6])
    ref = index.radius_search(q, 3)
    assert got["ids"] == ref.ids.tolist() and got["hamming"] == ref.distances.tolist() and got["radius"] == 3
    names = data.card["label_names"]
    rows = {int(i): r for s in ("train", "query") for i, r in zip(data[s].ids, data[s].labels)}
    expect = [", ".join(names[j] for j in np.flatnonzero(rows[i])) for i in got["ids"]]
    assert got["labels"] == expect and got["query_labels"] == expect_query(names, rows[qid])
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", str(qid), "-k", "3", "--radius", "2"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["search", str(out), "--run", str(tmp / "a"), "--ids", str(qid), "-k", "2", "--no-labels"]) == 0
    assert "labels" not in capsys.readouterr().out


def expect_query(names, row) -> str:
    return ", ".join(names[j] for j in np.flatnonzero(row))


def _search_json(index_dir, run, *argv, capsys):
    capsys.readouterr()
    assert main(["search", str(index_dir), "--run", str(run), *argv, "--json"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_search_by_id_from_stored_query_codes_matches_the_model(runs, tmp_path, capsys):
    """`index build` stores the query split's codes (both modalities); `search --ids` of query items then loads no
    model and answers as the model path does (the same index without the stored codes: an index built before them)
    and as a search with codes encoded here by the original model. Ids outside the query split, or a run whose files
    differ, go through the model."""
    tmp, models = runs
    new, old = tmp_path / "new", tmp_path / "old"
    assert main(["index", "build", "--run", str(tmp / "a"), "--modality", "image", "--out", str(new)]) == 0
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["queries"]["modalities"] == ["image", "text"] and manifest["queries"]["count"] == 693
    assert {"query_ids.npy", "query_codes.image.npy", "query_codes.text.npy"} <= set(manifest["files"])
    stripped = BinaryIndex.load(new)
    stripped.queries = None
    stripped.save(old)
    assert "queries" not in json.loads((old / "manifest.json").read_text())

    data = load_data("wiki")
    db = BinaryIndex.build(_codes(models["a"], "image", data["retrieval"].inputs["image"]), data["retrieval"].ids)
    rows = [5, 0, 692, 5, 100]  # out of split order, one repeated
    qids = ",".join(str(data["query"].ids[r]) for r in rows)
    for modality, how in (("text", ["-k", "25"]), ("image", ["-k", "25"]), ("text", ["--radius", "5"])):
        fast, err = _search_json(new, tmp / "a", "--ids", qids, "--modality", modality, *how, capsys=capsys)
        assert "no model loaded" in err
        slow, err = _search_json(old, tmp / "a", "--ids", qids, "--modality", modality, *how, capsys=capsys)
        assert "the index stores no query codes" in err and "no model loaded" not in err
        assert fast == slow
        q = _codes(models["a"], modality, data["query"].inputs[modality][rows])
        if how[0] == "-k":
            expect = db.search(q, 25)
            assert [g["ids"] for g in fast] == expect.ids.tolist()
            assert [g["hamming"] for g in fast] == expect.distances.tolist()
        else:
            hits = db.radius_search(q, 5)
            assert [g["ids"] for g in fast] == [hits.query(i)[0].tolist() for i in range(len(rows))]

    # a retrieval item's id is not in the stored table: the model encodes it
    rid = int(data["retrieval"].ids[7])
    got, err = _search_json(new, tmp / "a", "--ids", str(rid), "--modality", "text", capsys=capsys)
    assert "is not in the stored query split" in err
    assert got[0]["ids"] == db.search(_codes(models["a"], "text", data["retrieval"].inputs["text"][7:8]), 10)\
        .ids[0].tolist()
    # a copy of the run with an edited config.yaml: same model hash, but the run's files differ -> the model path
    import shutil

    edited = shutil.copytree(tmp / "a", tmp_path / "a-edited")
    (edited / "config.yaml").write_text((edited / "config.yaml").read_text() + "# edited\n")
    got, err = _search_json(new, edited, "--ids", qids, "--modality", "text", capsys=capsys)
    assert "differ from those of the run that built the index" in err
    assert [g["ids"] for g in got] == db.search(_codes(models["a"], "text", data["query"].inputs["text"][rows]), 10)\
        .ids.tolist()


def test_search_by_stored_id_imports_no_torch(runs, tmp_path):
    """The point of the stored codes: a search by id of a few items imports neither torch (nor the method) nor numba
    (a few queries are scanned in numpy: index/scan.py)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tmp, _ = runs
    out = tmp_path / "idx"
    assert main(["index", "build", "--run", str(tmp / "a"), "--modality", "image", "--out", str(out)]) == 0
    qid = str(load_data("wiki")["query"].ids[3])
    code = ("import sys; from bitrieve.cli import main; rc = main(sys.argv[1:]); "
            "assert not {'torch', 'numba'} & set(sys.modules), 'imported'; sys.exit(rc)")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", code, "search", str(out), "--run", str(tmp / "a"), "--ids", qid,
                        "--modality", "text", "-k", "3"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "no model loaded" in p.stderr and p.stdout.count("\n") == 5
