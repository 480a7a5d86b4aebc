"""`bitrieve results SPEC`: the results page as a build product (sweeps + stored runs + references -> markdown)."""

from __future__ import annotations

import json

import pytest
import yaml

from report_fixtures import code_stats, write_grid, write_run


def _toy_config(tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump({"method": "toy_linear", "data": "wiki", "device": "cpu", "tracking": "none",
                                   "params": {"epochs": 1, "batch_size": 64, "max_rows": 256},
                                   "eval": {"query_limit": 60, "ks": [50]}}))
    return cfg


def _spec(tmp_path, sections):
    spec = tmp_path / "page.yaml"
    spec.write_text(yaml.safe_dump({"output": str(tmp_path / "docs" / "results.md"),
                                    "figures": str(tmp_path / "docs" / "figures"), "root": str(tmp_path / "results"),
                                    "sections": sections}))
    return spec


def test_page_trains_missing_points_skips_finished_and_reads_stored_paths(tmp_path, capsys):
    from bitrieve.cli import main

    cfg = _toy_config(tmp_path)
    stored = tmp_path / "stored"
    write_grid(stored, bits=(16,), seeds=(0, 1), methods=("agch",))
    vse = write_run(stored, "vsepp", 1024, 0, 0.1, 0.1, group="vsepp-coco", dataset="coco")
    res = json.loads((vse / "results.json").read_text())
    res["metrics"] = {"i2t": {"r@1": 10.0, "r@5": 30.0, "r@10": 40.0, "rsum": 150.0},
                      "t2i": {"r@1": 8.0, "r@5": 25.0, "r@10": 37.0, "rsum": 150.0}}
    (vse / "results.json").write_text(json.dumps(res))
    spec = _spec(tmp_path, [
        {"id": "main", "title": "Toy sweep", "bits": [8, 16], "seeds": [0], "runs": [{"config": str(cfg)}],
         "metrics": ["map@all", "map@50"], "figures": ["pr"],
         "references": [{"label": "Paper X", "source": "Doe 2020, Table 1", "metric": "map@all", "task": "i2t",
                         "values": {8: 0.5, 16: 0.6}}]},
        {"id": "stored", "title": "Stored runs", "paths": [str(stored / "agch-wiki"), str(stored / "nothing")],
         "metrics": ["map@all"]},
        {"id": "match", "title": "Matching", "paths": [str(vse)], "metrics": ["recall"], "protocol_note": False},
    ])
    assert main(["results", str(spec), "--dry-run"]) == 0
    assert "main: 2 sweep points (2 new)" in capsys.readouterr().out
    # report-only: nothing is trained, the missing points are listed under their section
    assert main(["results", str(spec), "--report-only", "--no-progress"]) == 0
    md = (tmp_path / "docs" / "results.md").read_text()
    assert "Missing runs (2;" in md and not (tmp_path / "results" / "toy_linear-wiki").exists()
    # a full build trains the two points, a second one skips them
    assert main(["results", str(spec), "--no-progress"]) == 0
    assert main(["results", str(spec), "--no-progress"]) == 0
    assert "0 ran, 2 skipped" in capsys.readouterr().out
    md = (tmp_path / "docs" / "results.md").read_text()
    run = json.loads((tmp_path / "results" / "toy_linear-wiki" / "b8-s0" / "results.json").read_text())
    assert f"| I→T | toy\\_linear | {run['metrics']['i2t']['map@all']:.3f} |" in md
    assert "Missing runs (1;" in md and "stored/nothing (no stored results.json)" in md  # a stored path
    assert "| Paper X | I→T | mAP@all | 0.5 | 0.6 | Doe 2020, Table 1 |" in md  # references: their own table
    # stored agch runs: seeds 0, 1 of write_grid -> mean of 0.40 and 0.402
    assert "| I→T | agch | 0.401 ± 0.001 |" in md
    # recall table of the matching section
    assert "| coco | vsepp | 1 | 10.0 | 30.0 | 40.0 | 8.0 | 25.0 | 37.0 | 150.0 |" in md
    # figures of the section, linked relative to the page
    assert (tmp_path / "docs" / "figures" / "main" / "pr_wiki_b16.png").stat().st_size > 10_000
    assert "](figures/main/pr_wiki_b16.png)" in md
    assert (tmp_path / "docs" / "results_long.csv").read_text().count("\n") > 10


def test_page_spec_errors_name_the_key(tmp_path, capsys):
    from bitrieve.cli import main

    spec = _spec(tmp_path, [{"id": "a", "title": "A", "metrcis": ["map@all"]}])
    assert main(["results", str(spec), "--report-only"]) == 2
    assert "sections.0.metrcis" in capsys.readouterr().err
    cfg = _toy_config(tmp_path)
    spec = _spec(tmp_path, [{"id": "a", "title": "A", "runs": [{"config": str(cfg), "set": ["params.epochz=2"]}]}])
    assert main(["results", str(spec), "--report-only"]) == 2
    assert "params.epochz" in capsys.readouterr().err
    assert not (tmp_path / "docs" / "results.md").exists()  # nothing half-written
    spec = _spec(tmp_path, [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}])
    assert main(["results", str(spec), "--report-only"]) == 2
    assert "repeated: ['a']" in capsys.readouterr().err


def test_repository_page_spec_is_valid():
    """docs/results_page.yaml (the spec behind docs/results.md) parses and every config it names validates."""
    import os
    from pathlib import Path

    import yaml

    from bitrieve.config import ConfigError
    from bitrieve.report.page import load_page_spec, section_points

    root = Path(__file__).resolve().parents[1]
    spec = load_page_spec(root / "docs" / "results_page.yaml")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        points = {s.id: section_points(spec, s) for s in spec.sections}
    finally:
        os.chdir(cwd)
    # the main Wiki section, counted from the YAML itself: every run x every bit length x its seeds (a run's own
    # `seeds` replaces the section's)
    (wiki,) = [s for s in yaml.safe_load((root / "docs" / "results_page.yaml").read_text())["sections"]
               if s["id"] == "wiki"]
    expected = sum(len(wiki["bits"]) * len(r.get("seeds", wiki["seeds"])) for r in wiki["runs"])
    assert len(wiki["runs"]) == 8 and len(points["wiki"]) == expected
    assert len({p.run_dir for p in points["wiki"]}) == expected  # no point twice
    assert {"wiki", "wiki-pair-input", "image-hashing-dsh", "matching-vsepp"} <= set(points)
    with pytest.raises(ConfigError, match=r"file not found: .*no-such-page\.yaml"):
        load_page_spec(root / "docs" / "no-such-page.yaml")


def test_code_summary_and_protocol_block_counts(tmp_path):
    """Collapse warnings are summarised per method and modality; a protocol block evaluating other counts than the
    split (UCMFH's released pair-input drops the last batch) says so in the table caption."""
    from bitrieve.report.page import code_summary
    from bitrieve.report.results import load_results
    from bitrieve.report.tables import build_tables, to_markdown

    for seed, share in ((0, 0.997), (1, 0.6), (2, None)):
        d = write_run(tmp_path, "ucmfh", 16, seed, 0.1, 0.1)
        res = json.loads((d / "results.json").read_text())
        if share is not None:
            res["diagnostics"] = {"warnings": [f"COLLAPSE (image): one code is shared by {share:.1%} of the items"],
                                  "codes": {"image": code_stats(distinct=2, share=share, constant_bits=15)},
                                  "method": {}}
        res["protocols"] = {"ucmfh-pair-input": {t: {"map@50": 0.5, "n_query": 640.0, "n_retrieval": 2048.0}
                                                 for t in ("i2t", "t2i")}}
        (d / "results.json").write_text(json.dumps(res))
    runs = load_results([tmp_path])
    lines = code_summary(runs)
    assert any("ucmfh, image codes: degenerate in 2 of 3 runs; worst 16 bits seed 0: 2 distinct codes, 99.7%" in x
               for x in lines)
    (table,) = build_tables(runs, metric="ucmfh-pair-input:map@50")
    assert "the 'ucmfh-pair-input' protocol evaluates 640 queries / 2,048 retrieval items" in to_markdown(table)
    # a run without the block (another method in the same table, shown as –) does not hide the counts
    write_run(tmp_path, "agch", 16, 0, 0.2, 0.2)
    (table,) = build_tables(load_results([tmp_path]), metric="ucmfh-pair-input:map@50")
    assert "the 'ucmfh-pair-input' protocol evaluates 640 queries / 2,048 retrieval items" in to_markdown(table)


def test_a_partial_redraw_of_examples_keeps_the_stored_ones(tmp_path, monkeypatch):
    """Checkpoints are not committed: when only some runs can be redrawn, the other runs' stored example figures
    stay linked (a regeneration once dropped five of eight from docs/results.md)."""
    from pathlib import Path

    from bitrieve.report import examples
    from bitrieve.report.page import Section, _section_figures

    out = tmp_path / "figs" / "s"
    out.mkdir(parents=True)
    (out / "examples_old_wiki_b128.png").write_bytes(b"stored")
    redrawn = out / "examples_new_wiki_b128.png"

    def fake_draw(runs, out_dir, bits=None):
        Path(redrawn).write_bytes(b"new")
        return [redrawn, redrawn.with_suffix(".pdf")]

    monkeypatch.setattr(examples, "plot_examples_for_runs", fake_draw)
    section = Section(id="s", title="S", figures=["examples"])
    lines = _section_figures(section, [], tmp_path / "figs", tmp_path)
    assert lines == ["![examples_new_wiki_b128](figs/s/examples_new_wiki_b128.png)",
                     "![examples_old_wiki_b128](figs/s/examples_old_wiki_b128.png)"]
