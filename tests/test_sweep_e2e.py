"""End to end on the embedded Wiki data with the real engine: sweep (CCA-ITQ, closed form) -> report -> figures.
Slow (real training and evaluation, ~1 min on 2 busy cores): run with `pytest -m slow`."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_sweep_report_figures_on_wiki(tmp_path, capsys):
    from bitrieve.cli import main

    cfg = tmp_path / "cca.yaml"
    cfg.write_text(yaml.safe_dump({"method": "cca_itq", "data": "wiki", "device": "cpu", "tracking": "none",
                                   "params": {"kernel": True, "anchors": 100, "itq_iterations": 10}}))
    root = tmp_path / "results"
    argv = ["sweep", str(cfg), "--bits", "16", "--seeds", "0,1", "--root", str(root), "--no-progress"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "0 ran, 2 skipped" in capsys.readouterr().out
    run = root / "cca_itq-wiki" / "b16-s0"
    res = json.loads((run / "results.json").read_text())
    assert res["bits"] == 16 and res["protocol"]["n_query"] == 693 and 0.1 < res["metrics"]["i2t"]["map@all"] < 0.5

    md = tmp_path / "docs" / "results.md"
    assert main(["report", str(root), "--results-md", str(md), "--command", "test"]) == 0
    text = md.read_text()
    expect = sum(json.loads((root / "cca_itq-wiki" / f"b16-s{s}" / "results.json").read_text())["metrics"]["i2t"]
                 ["map@all"] for s in (0, 1)) / 2
    assert f"| I→T | cca\\_itq | {expect:.3f} ± " in text

    out = tmp_path / "fig"
    assert main(["figures", str(root), "--out", str(out), "--kinds", "pr,examples"]) == 0
    assert (out / "pr_wiki_b16.png").stat().st_size > 15_000
    assert (out / "examples_cca_itq_wiki_b16.png").stat().st_size > 15_000

    # the example figure shows the reported model: codes reloaded from the checkpoint give the stored mAP
    from bitrieve.report.examples import load_codes, verify_codes
    from bitrieve.report.results import load_result

    data, q, db = load_codes(run)
    line = verify_codes(load_result(run / "results.json"), data, q, db)
    assert line.startswith("reloaded codes reproduce results.json") and "T→I" in line
