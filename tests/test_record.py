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
