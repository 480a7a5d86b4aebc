"""Loading a trained run skips ``prepare`` for a method whose fitted state is all in the checkpoint
(``HashMethod.prepare_on_load = False``, issue 21 item 4): DGCPN's n x n neighbour graph is no longer built by
``bitrieve eval`` (nor by index build / search, which load through the same ``load_run``), and the metrics are
exactly those of the trained method in memory (results.json) and of the old path that re-ran ``prepare``."""

from __future__ import annotations

import json

import pytest

from bitrieve.cli import main
from bitrieve.config import parse_config
from bitrieve.engine import load_run, train_run
from bitrieve.methods import get_method

# tiny runs on the embedded Wiki data; DGCPN with the standardised inputs, so prepare fits buffers encode reads
RUNS = {
    "dgcpn": {"hidden": 32, "epochs": 1, "input_norm": "standardize", "knn_number": None, "scale": None},
    "cca_itq": {"anchors": 50, "itq_iterations": 5},  # the whole model is prepare's closed-form fit
}


def _eval(run, capsys) -> dict:
    assert main(["eval", str(run), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["metrics"]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_eval_of_a_loaded_run_skips_prepare_and_keeps_every_metric(name, tmp_path, monkeypatch, capsys):
    cfg = parse_config({"method": name, "data": "wiki", "bits": 16, "seed": 0, "tracking": "none",
                        "params": RUNS[name], "eval": {"query_limit": 100, "ks": [50]}})
    run = tmp_path / "run"
    trained = train_run(cfg, run)["metrics"]  # evaluated by the prepared method in memory: the reference
    capsys.readouterr()
    cls = get_method(name)
    assert cls.prepare_on_load is False

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name}: prepare ran while loading a trained run")

    with monkeypatch.context() as m:
        m.setattr(cls, "prepare", refuse)
        if name == "dgcpn":  # the graph itself, wherever it would be built from
            m.setattr("bitrieve.methods.dgcpn.dgcpn_similarity", refuse)
        after = _eval(run, capsys)
        _, method = load_run(run, "cpu")
        assert getattr(method, "_graph", None) is None
    with monkeypatch.context() as m:
        m.setattr(cls, "prepare_on_load", True)  # the code before: prepare again, then the checkpoint
        before = _eval(run, capsys)
        if name == "dgcpn":
            assert load_run(run, "cpu")[1]._graph is not None  # the switch did restore the old path
    assert after == trained and before == trained  # exact: every metric, 0 difference
