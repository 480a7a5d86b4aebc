"""The typed run record (bitrieve/record.py): every stored results.json loads and gives back every number it holds,
unchanged; writes are atomic and read back equal; bad records fail naming the file and the key."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from bitrieve.record import RECORD_FILE, SCHEMA_VERSION, RecordError, RunRecord, jsonable, read_record, \
    record_from_dict, write_record
from report_fixtures import code_stats, synthetic_results

STORED = sorted((Path(__file__).resolve().parents[1] / "results").rglob(RECORD_FILE))


def numeric_leaves(obj, path=()):
    """(path, value) of every number in a parsed JSON document (bools are not numbers)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from numeric_leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numeric_leaves(v, path + (i,))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def model_value(obj, path):
    """Follow a JSON path through the model's own objects (fields by name or alias, typed extras, dicts, lists)."""
    for key in path:
        if isinstance(obj, BaseModel):
            names = {(f.alias or name): name for name, f in type(obj).model_fields.items()}
            obj = getattr(obj, names[key]) if key in names else obj.__pydantic_extra__[key]
        else:
            obj = obj[key]
    return obj


def same_number(a, b) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


@pytest.mark.skipif(not STORED, reason="no stored results.json under results/")
def test_every_stored_record_loads_and_keeps_every_number():
    checked = 0
    for path in STORED:
        raw = json.loads(path.read_text())
        record = read_record(path)
        for where, value in numeric_leaves(raw):
            got = model_value(record, where)
            assert same_number(got, value), f"{path}: {'.'.join(map(str, where))} is {got!r}, stored {value!r}"
            checked += 1
        assert record.to_json_dict() == raw, f"{path}: written back differently"
    assert checked > 100_000  # 189 runs with curves and histories: the walk really visited the numbers


def test_write_then_read_gives_the_same_json(tmp_path):
    raw = synthetic_results("agch", 16, 1, 0.4, 0.3)
    raw["history"][0]["loss"] = float("nan")  # a diverged epoch stays NaN (not null) in the file
    raw["metrics"]["i2t"]["queries_without_relevant"] = 3  # ints stay ints
    raw["protocols"] = {"ucmfh-pair-input": {"i2t": {"map@50": 0.5, "n_query": 640.0}, "description": "pairs"}}
    raw["diagnostics"]["codes"] = {"image": code_stats()}
    record = record_from_dict(raw)
    path = write_record(tmp_path, record)
    assert path == tmp_path / RECORD_FILE and [p.name for p in tmp_path.iterdir()] == [RECORD_FILE]
    text = path.read_text()
    assert '"loss": NaN' in text
    back = json.loads(text)
    assert list(back) == list(raw)  # the stored key order
    assert all(same_number(model_value(read_record(tmp_path), w), v) for w, v in numeric_leaves(raw))
    assert back["metrics"]["i2t"]["queries_without_relevant"] == 3 and back["schema"] == SCHEMA_VERSION
    assert record.extra_evaluations["ucmfh-pair-input"].tasks() == {"i2t": {"map@50": 0.5, "n_query": 640.0}}
    assert "selection" not in back and "notes" not in back["protocol"]  # unset optional keys are not written


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("config_sha256"), "missing key 'config_sha256'"),
    (lambda d: d.update(seed="0"), "key 'seed': Input should be a valid integer, got str '0'"),
    (lambda d: d["protocol"].update(tie_policy="stable"), "unknown key 'protocol.tie_policy'"),
    (lambda d: d["metrics"]["t2i"].update({"map@all": "0.5"}), "key 'metrics.t2i.map@all': expected a number, got str"),
    (lambda d: d["history"][2].update(loss=None), "key 'history.2.loss': expected a number, got NoneType None"),
    (lambda d: d.update(bits=True), "key 'bits': Input should be a valid integer, got bool True"),
    (lambda d: d["diagnostics"].update(codes={"image": {}}), "missing key 'diagnostics.codes.image.n_items' (and 8 more"),
    (lambda d: d["curves"]["i2t"].pop("p@n"), "missing key 'curves.i2t.p@n'"),
    (lambda d: d.update(schema=7), "key 'schema' is 7, this reader knows schema 1"),
])
def test_bad_records_name_the_file_and_the_key(tmp_path, change, message):
    raw = synthetic_results("agch", 16, 0, 0.4, 0.3)
    change(raw)
    (tmp_path / RECORD_FILE).write_text(json.dumps(raw))
    with pytest.raises(RecordError) as e:
        read_record(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / RECORD_FILE}: ") and message in str(e.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(RecordError, match="no such file"):
        read_record(tmp_path)
    (tmp_path / RECORD_FILE).write_text("{")
    with pytest.raises(RecordError, match="not valid JSON"):
        read_record(tmp_path / RECORD_FILE)
    (tmp_path / RECORD_FILE).write_text("[]")
    with pytest.raises(RecordError, match="expected a JSON object"):
        read_record(tmp_path)


def test_jsonable_turns_numpy_scalars_into_python_numbers():
    out = jsonable({"a": np.float32(0.5), "b": np.int64(3), "c": (1, np.float64(2.0)), "d": [True, None, "x"]})
    assert out == {"a": 0.5, "b": 3, "c": [1, 2.0], "d": [True, None, "x"]}
    assert type(out["a"]) is float and type(out["b"]) is int and type(out["c"][1]) is float
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        jsonable({"x": object()})


def test_record_module_does_not_import_torch():
    code = "import sys, bitrieve.record; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_constructed_record_writes_only_what_was_set():
    """Keyword construction (as the trainer builds the record): optional blocks absent unless given."""
    raw = synthetic_results("agch", 16, 0, 0.4, 0.3)
    record = RunRecord(**raw)
    assert record.selection is None and record.diagnostics.parameter_movement is None
    assert record.to_json_dict() == raw


# issue 22 row 3: no absolute machine path in a committed record or a page made from them
ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATHS = ("/work/", "/home/", "/tmp/")


def _migrate_records():
    """scripts/migrate_records.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("migrate_records", ROOT / "scripts" / "migrate_records.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _absolute_entries(argv):
    return [a for a in argv if a.startswith("/") or "=/" in a]


@pytest.mark.skipif(not STORED, reason="no stored results.json under results/")
def test_committed_records_and_pages_hold_no_absolute_machine_path():
    # before: 21 results/*/b*-s*/config.yaml said `data: /work/stores/...` and 221 results.json / env.json had
    # absolute paths in env.argv; the VSE++ COCO-mini row of docs/results.md showed the store's absolute path
    import hashlib

    import yaml

    from bitrieve.config import load_config

    files = [p for n in ("config.yaml", RECORD_FILE, "env.json") for p in (ROOT / "results").rglob(n)]
    assert len(files) > 600
    migrated = 0
    for path in files:
        text = path.read_text()
        assert not any(m in text for m in MACHINE_PATHS), f"{path}: holds a machine path"
        if path.name == "config.yaml":
            data = yaml.safe_load(text).get("data", "")
            assert not data.startswith("/"), f"{path}: data '{data}'"
            continue
        obj = json.loads(text)
        argv = (obj["env"] if path.name == RECORD_FILE else obj).get("argv", [])
        assert not _absolute_entries(argv), f"{path}: env.argv {_absolute_entries(argv)}"
        if path.name == RECORD_FILE and any(m.get("config_sha256_before") for m in obj.get("migrations", [])):
            # a migrated config hash is the hash of the config.yaml beside it: by an independent reference (the
            # sha256 of the YAML document as stored: these runs' config.yaml is their identity) and as the sweep and
            # `train`'s "same config: skipped" check recompute it; state.json agrees
            run = path.parent
            stored = yaml.safe_load((run / "config.yaml").read_text())
            assert obj["config_sha256"] == hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
            assert obj["config_sha256"] == load_config(run / "config.yaml").sha256()
            assert json.loads((run / "state.json").read_text())["config_sha256"] == obj["config_sha256"]
            migrated += 1
    assert migrated == 21
    pages = [p for p in (ROOT / "docs").glob("*.md") if "<!-- Generated file" in p.read_text()]
    assert pages  # docs/results.md
    for page in [*pages, ROOT / "docs" / "results_long.csv"]:
        text = page.read_text()
        assert not any(m in text for m in MACHINE_PATHS), f"{page}: holds a machine path"
    assert _migrate_records().main([str(ROOT / "results"), "--check"]) == 0  # nothing left to migrate


def test_migrate_records_makes_a_run_portable_and_changes_no_number(tmp_path, capsys):
    from bitrieve.config import dump_config, parse_config

    mig = _migrate_records()
    cfg = parse_config({"method": "cca_itq", "data": "/srv/lab/stores/wiki-x", "bits": 16})
    # the hash the same run gets when trained with the relative store path (a fresh `train` of it)
    want_sha = parse_config({"method": "cca_itq", "data": "stores/wiki-x", "bits": 16}).sha256()
    assert want_sha != cfg.sha256()
    run = tmp_path / "results" / "cca_itq-wiki-x" / "b16-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    raw = synthetic_results("cca_itq", 16, 0, 0.4, 0.3)
    raw["config_sha256"] = cfg.sha256()
    raw["env"]["argv"] = ["/home/u/bitrieve/src/bitrieve/__main__.py", "train", "c.yaml", "--set",
                          "data=/srv/lab/stores/wiki-x", "--out", "/home/u/bitrieve/results/cca_itq-wiki-x/b16-s0",
                          "--log", "/tmp/elsewhere/log.txt"]
    (run / RECORD_FILE).write_text(json.dumps(raw, indent=1))  # an older writer's indentation, no final newline
    (run / "env.json").write_text(json.dumps(raw["env"], indent=2) + "\n")
    (run / "state.json").write_text(json.dumps({"config_sha256": cfg.sha256(), "epoch": 1}, indent=2) + "\n")
    portable = run.parent.parent / "other" / "b16-s0"  # a run with nothing to migrate stays byte-identical
    portable.mkdir(parents=True)
    (portable / RECORD_FILE).write_text(json.dumps(synthetic_results("cca_itq", 16, 0, 0.5, 0.5)))
    untouched = (portable / RECORD_FILE).read_bytes()
    root = str(tmp_path / "results")

    assert mig.main([root, "--check"]) == 1
    assert (run / "config.yaml").read_text() == dump_config(cfg)  # --check writes nothing
    assert mig.main([root, "--date", "2026-12-07"]) == 0
    assert "config.yaml data 1, config_sha256 1, env.argv entries 4" in capsys.readouterr().out

    text = (run / "config.yaml").read_text()
    assert text == dump_config(cfg).replace("data: /srv/lab/stores/wiki-x\n", "data: stores/wiki-x\n")
    new = json.loads((run / RECORD_FILE).read_text())
    assert new["config_sha256"] == want_sha
    assert json.loads((run / "state.json").read_text()) == {"config_sha256": want_sha, "epoch": 1}
    argv = ["bitrieve", "train", "c.yaml", "--set", "data=stores/wiki-x", "--out", "results/cca_itq-wiki-x/b16-s0",
            "--log", ".../elsewhere/log.txt"]
    env = json.loads((run / "env.json").read_text())
    assert new["env"]["argv"] == env["argv"] == argv
    (note,) = new["migrations"]
    assert env["migrations"] == [note]
    assert note["date"] == "2026-12-07" and note["by"] == "scripts/migrate_records.py"
    assert note["config_sha256_before"] == cfg.sha256() and len(note["changes"]) == 6
    assert not any(m in json.dumps(note) for m in ("/srv/", "/home/", "/tmp/"))  # the note names no old path
    # every number of the record as it was (the hash aside), and it is still a valid record
    before = {w: v for w, v in numeric_leaves(raw)}
    after = {w: v for w, v in numeric_leaves(new) if w[0] != "migrations"}
    assert before == after and all(same_number(after[w], v) for w, v in before.items())
    assert read_record(run).migrations[0].changes == note["changes"]
    assert (run / RECORD_FILE).read_text().startswith('{\n "schema"') and not (run / RECORD_FILE).read_text(
        ).endswith("\n")
    assert (portable / RECORD_FILE).read_bytes() == untouched

    snapshot = {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert mig.main([root, "--check"]) == 0 and mig.main([root, "--date", "2027-01-01"]) == 0  # idempotent
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == snapshot


def test_migrate_records_refuses_what_it_cannot_migrate_safely(tmp_path, capsys):
    from bitrieve.config import dump_config, parse_config

    mig = _migrate_records()
    for name, data, sha in (("no-stores", "/srv/lab/wiki-x", None), ("other-hash", "/srv/stores/wiki-x", "0" * 64)):
        cfg = parse_config({"method": "cca_itq", "data": data, "bits": 16})
        run = tmp_path / name / "b16-s0"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(dump_config(cfg))
        (run / RECORD_FILE).write_text(json.dumps({**synthetic_results("cca_itq", 16, 0, 0.4, 0.3),
                                                   "config_sha256": sha or cfg.sha256()}))
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert mig.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not under a 'stores' folder" in err and "is not the hash of config.yaml" in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot
