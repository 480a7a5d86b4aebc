"""Tables and the results page from synthetic results.json files (3 seeds × 2 bit lengths × 2 methods)."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from bitrieve.report.results import ReportError, load_results
from bitrieve.report.results_md import write_results_md
from bitrieve.report.tables import build_tables, to_csv, to_latex, to_long_csv, to_markdown
from report_fixtures import synthetic_results, value, write_grid, write_run


@pytest.fixture()
def grid(tmp_path):
    write_grid(tmp_path / "results")
    return tmp_path / "results"


def test_mean_std_n_from_stored_values(grid):
    (t,) = build_tables(load_results([grid]))
    assert t.tasks == ["i2t", "t2i"] and t.bits == [16, 32] and set(t.rows) == {"agch", "djsrh"}
    for task_i, task in enumerate(("i2t", "t2i")):
        for m in ("agch", "djsrh"):
            for bi, b in enumerate((16, 32)):
                c = t.cells[(task, m, b)]
                expect = [value(m, task_i, bi, s) for s in (0, 1, 2)]
                assert c.n == 3 and sorted(c.seeds) == [0, 1, 2]
                assert c.mean == pytest.approx(statistics.mean(expect), abs=1e-12)
                assert c.std == pytest.approx(statistics.stdev(expect), abs=1e-12)  # ddof = 1


def test_best_per_column_is_marked(grid):
    (t,) = build_tables(load_results([grid]))
    # agch is higher on i2t, djsrh on t2i (see report_fixtures.BASE)
    for b in (16, 32):
        assert t.cells[("i2t", "agch", b)].best and not t.cells[("i2t", "djsrh", b)].best
        assert t.cells[("t2i", "djsrh", b)].best and not t.cells[("t2i", "agch", b)].best
    md = to_markdown(t)
    assert "| I→T | agch | **0.402 ± 0.002** | **0.412 ± 0.002** |" in md
    assert "|  | djsrh | 0.352 ± 0.002 | 0.362 ± 0.002 |" in md
    assert "| T→I | agch | 0.382 ± 0.002 | 0.392 ± 0.002 |" in md
    tex = to_latex(t)
    assert r"\textbf{0.402 $\pm$ 0.002}" in tex and r"I$\rightarrow$T" in tex
    assert tex.count(r"\textbf{") == 4 and r"\begin{tabular}{llrr}" in tex


def test_caption_states_protocol(grid):
    (t,) = build_tables(load_results([grid]), metric="map@50")
    md = to_markdown(t)
    cap = md.split("| Task")[0]
    for needle in ("mAP@50", "wiki", "693 queries", "2,173 retrieval", "ties: stable", "n = 3", "seeds 0, 1, 2",
                   "share >= 1 label"):
        assert needle in cap, needle
    assert "WARNING" not in md
    assert t.cells[("i2t", "agch", 16)].mean == pytest.approx(statistics.mean(
        [value("agch", 0, 0, s) + 0.05 for s in (0, 1, 2)]))


def test_uneven_seed_counts_are_shown(tmp_path):
    write_grid(tmp_path)
    (tmp_path / "djsrh-wiki" / "b32-s2" / "results.json").unlink()
    (t,) = build_tables(load_results([tmp_path]))
    text, _ = t.cell_text("i2t", "djsrh", 32)
    assert text.endswith("(n=2)")
    assert "(n=" not in t.cell_text("i2t", "agch", 32)[0]


@pytest.mark.parametrize("change", [{"tie": "tie-averaged"}, {"dataset": "mirflickr"}, {"n_query": 500}])
def test_mixed_protocols_refused_or_flagged(tmp_path, change):
    write_grid(tmp_path, methods=("agch",))
    write_grid(tmp_path / "other", methods=("djsrh",), **change)
    runs = load_results([tmp_path])
    with pytest.raises(ReportError, match="mix protocols") as e:
        build_tables(runs)
    assert next(iter(change)) in str(e.value) or "dataset" in str(e.value)
    (t,) = build_tables(runs, allow_mixed=True)
    md = to_markdown(t)
    assert md.startswith("**WARNING: this table mixes protocols")
    assert "WARNING" in to_latex(t) and "mixes protocols" in to_csv(t)
    assert len(t.rows) == 2 and all("[" in r for r in t.rows)  # each row names its protocol
    tables = build_tables(runs, split=True)
    assert len(tables) == 2 and all(len(x.rows) == 1 and not x.warnings for x in tables)


def test_ablation_variants_are_separate_rows(tmp_path):
    for s in (0, 1):
        write_run(tmp_path, "agch", 16, s, 0.4, 0.4, params={"no_gcn": False}, group="agch-wiki")
        write_run(tmp_path, "agch", 16, s, 0.3, 0.3, params={"no_gcn": True}, group="agch-wiki-no_gcn=true")
    (t,) = build_tables(load_results([tmp_path]))
    assert sorted(t.rows) == ["agch (no_gcn=false)", "agch (no_gcn=true)"]
    assert t.cells[("i2t", "agch (no_gcn=false)", 16)].best


def test_csv_formats(grid):
    runs = load_results([grid])
    (t,) = build_tables(runs)
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert len(rows) == 2 * 2 * 2
    r = next(x for x in rows if x["task"] == "t2i" and x["method"] == "djsrh" and x["bits"] == "32")
    assert float(r["mean"]) == pytest.approx(statistics.mean([value("djsrh", 1, 1, s) for s in (0, 1, 2)]), abs=1e-6)
    assert r["best"] == "1" and r["n"] == "3" and r["tie"] == "stable"
    long = list(csv.DictReader(io.StringIO(to_long_csv(runs))))
    maps = [x for x in long if x["metric"] == "map@all"]
    assert len(maps) == 2 * 2 * 3 * 2  # methods × bits × seeds × tasks
    assert {x["seed"] for x in maps} == {"0", "1", "2"}


def test_missing_metric_and_bad_files(tmp_path):
    write_grid(tmp_path, with_map50=False)
    runs = load_results([tmp_path])
    with pytest.raises(ReportError, match="no run has metric 'map@50'"):
        build_tables(runs, metric="map@50")
    bad = tmp_path / "x" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({**synthetic_results("agch", 32, 0, 0.1, 0.1), "bits": "32"}))
    with pytest.raises(ReportError, match=f"{bad}: key 'bits': Input should be a valid integer, got str '32'"):
        load_results([bad])
    bad.write_text(json.dumps({k: v for k, v in synthetic_results("agch", 32, 0, 0.1, 0.1).items() if k != "env"}))
    with pytest.raises(ReportError, match=f"{bad}: missing key 'env'"):
        load_results([bad])
    with pytest.raises(ReportError, match="no such file"):
        load_results([tmp_path / "missing"])


def test_results_md_and_cli(grid, tmp_path, capsys):
    from bitrieve.cli import main

    md = tmp_path / "docs" / "results.md"
    write_results_md([grid], md, "bash scripts/make_results.sh")
    text = md.read_text()
    assert "## mAP@all" in text and "## mAP@50" in text and "bash scripts/make_results.sh" in text
    assert "## Protocol" in text and "693 queries" in text
    assert (tmp_path / "docs" / "results_long.csv").is_file()
    assert main(["report", str(grid), "--format", "latex"]) == 0
    assert r"\begin{table}" in capsys.readouterr().out
    out = tmp_path / "t.csv"
    assert main(["report", str(grid), "--format", "csv", "--metric", "map@50", "--out", str(out)]) == 0
    assert out.read_text().startswith("task,method,bits,metric")
    write_grid(tmp_path / "tie", methods=("agch",), tie="tie-averaged")
    # mixed protocols: never one table unless --allow-mixed; one table per protocol instead, said on stderr
    assert main(["report", str(grid), str(tmp_path / "tie")]) == 0
    cap = capsys.readouterr()
    assert "mix 2 protocols" in cap.err and cap.out.count("| Task |") == 2
    assert "ties: stable" in cap.out and "ties: tie-averaged" in cap.out and "WARNING" not in cap.out
    assert main(["report", str(grid), str(tmp_path / "tie"), "--allow-mixed"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count("| Task |") == 1 and cap.out.startswith("**WARNING: this table mixes protocols")


def test_queries_without_relevant_are_stated(tmp_path):
    write_grid(tmp_path)
    f = tmp_path / "agch-wiki" / "b16-s0" / "results.json"
    d = json.loads(f.read_text())
    d["metrics"]["t2i"]["queries_without_relevant"] = 3
    f.write_text(json.dumps(d))
    (t,) = build_tables(load_results([tmp_path]))
    assert "Queries without any relevant database item (AP 0, counted in the mean; most in one run): T→I 3." \
        in to_markdown(t)


def test_compatibility_protocol_metric(tmp_path):
    write_grid(tmp_path, methods=("agch",), bits=(16,), seeds=(0, 1))
    for s, v in ((0, 0.61), (1, 0.63)):
        f = tmp_path / "agch-wiki" / f"b16-s{s}" / "results.json"
        d = json.loads(f.read_text())
        # seed 0 stored before the djsrh -> dcmh rename, seed 1 after: both are read as dcmh
        d["protocols"] = {"djsrh" if s == 0 else "dcmh": {"i2t": {"map@50": v}, "t2i": {"map@50": v - 0.1}}}
        f.write_text(json.dumps(d))
    runs = load_results([tmp_path])
    for name in ("dcmh:map@50", "djsrh:map@50"):
        (t,) = build_tables(runs, metric=name)
        assert t.cells[("i2t", "agch", 16)].mean == pytest.approx(0.62)
        assert t.cells[("t2i", "agch", 16)].mean == pytest.approx(0.52)
        assert "mAP@50 (dcmh protocol" in to_markdown(t)
    with pytest.raises(ReportError, match="djsrh:map@50"):
        build_tables(runs, metric="djsrh:map@1000")


def _set(run_dir, **changes):
    f = run_dir / "results.json"
    d = json.loads(f.read_text())
    d.update(changes)
    f.write_text(json.dumps(d))


def test_split_skips_groups_without_the_metric_and_renders_one_csv(tmp_path, capsys):
    """A protocol group whose runs lack the metric (Recall@K-only matching runs) is skipped and named; the others
    still get their table; CSV of several tables has one header."""
    from bitrieve.cli import main

    write_grid(tmp_path / "a", methods=("agch",))
    recall = write_run(tmp_path / "b", "vsepp", 1024, 0, 0.1, 0.1, dataset="coco-mini", protocol="official-captions")
    _set(recall, metrics={"i2t": {"r@1": 7.6, "r@5": 20.3}, "t2i": {"r@1": 2.8, "r@5": 8.6}})
    runs = load_results([tmp_path])
    tables = build_tables(runs, split=True)
    assert len(tables) == 1 and tables[0].protocols[0]["dataset"] == "wiki"
    (skip,) = tables.skipped
    assert "coco-mini" in skip and "no 'map@all'" in skip and "r@1, r@5" in skip and str(tmp_path / "b") in skip
    with pytest.raises(ReportError, match="mix protocols"):
        build_tables(runs)
    with pytest.raises(ReportError, match="no run has metric 'map@1000'"):
        build_tables(runs, metric="map@1000", split=True)
    assert main(["report", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert cap.out.count("| Task |") == 1 and "skipped coco-mini" in cap.err and "mix 2 protocols" in cap.err
    write_grid(tmp_path / "c", methods=("djsrh",), tie="tie-averaged")
    assert main(["report", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["tie"] for r in rows} == {"stable", "tie-averaged"} and len(rows) == 2 * 2 * 2  # 2 tables, 1 header


def test_allow_mixed_with_columns_missing_in_some_tasks(tmp_path):
    """--allow-mixed used to crash (max() of an empty column) when a (task, bits) pair exists in no run."""
    write_run(tmp_path, "dsh", 12, 0, 0.6, 0.6, dataset="cifar10", protocol="cifar10-dsh")
    d = tmp_path / "dsh-cifar10" / "b12-s0"
    _set(d, metrics={"i2i": {"map@all": 0.61}})
    write_run(tmp_path, "agch", 16, 0, 0.4, 0.38)
    (t,) = build_tables(load_results([tmp_path]), allow_mixed=True)
    assert t.tasks == ["i2t", "t2i", "i2i"] and t.bits == [12, 16]
    assert t.cell_text("i2i", next(r for r in t.rows if r.startswith("dsh")), 12)[0] == "0.610"
    assert t.cell_text("i2i", next(r for r in t.rows if r.startswith("agch")), 16)[0] == "–"
    assert to_markdown(t).startswith("**WARNING: this table mixes protocols")


def test_runs_under_an_older_dataset_card_are_named(tmp_path):
    """Runs of one dataset under two cards: the group whose card is not the data's current card (the embedded
    Wiki's) is flagged with the card keys that differ; the current group is not."""
    from bitrieve.data import load_data
    from bitrieve.data.types import card_bytes, card_sha256

    now = dict(load_data("wiki").card)
    old = {**now, "protocol": "wiki: 693 query / 2,173 retrieval = train (standard)"}  # the older card's form
    for root, card in (("new", now), ("old", old)):
        for d in write_grid(tmp_path / root, methods=("agch",) if root == "old" else ("djsrh",)):
            (d / "card.json").write_bytes(card_bytes(card))
            _set(d, dataset_card_sha256=card_sha256(card))
    runs = load_results([tmp_path])
    tables = build_tables(runs, split=True)
    assert len(tables) == 2 and [t.rows for t in tables] == [["djsrh"], ["agch"]]  # equal sizes: found first, first
    assert not tables[0].warnings
    (note,) = tables[1].warnings
    assert note.startswith("6 runs in " + str(tmp_path / "old" / "agch-wiki")) and "older 'wiki' dataset card" in note
    assert "differs from the current one in protocol" in note and "input files are the same" in note
    assert tables.notes == [note]
    with pytest.raises(ReportError, match="older 'wiki' dataset card"):
        build_tables(runs)  # the refusal says it too


def test_an_older_card_note_lands_on_the_group_whose_data_changed(tmp_path):
    """Two data sources named 'wiki': the embedded copy (current) and a converted store whose card.json has changed
    since its runs were evaluated. The note belongs to the store's runs; the embedded runs are current. (Before, the
    first group's data stood for every group of the name, and the note went to the wrong table.)"""
    import yaml

    from bitrieve.data import load_data
    from bitrieve.data.types import card_bytes, card_sha256

    embedded = dict(load_data("wiki").card)
    store = tmp_path / "stores" / "wiki-copy"
    store.mkdir(parents=True)
    store_now = {**embedded, "source": "a converted copy", "split_seed": 3}
    (store / "card.json").write_bytes(card_bytes(store_now))
    store_then = {**store_now, "split_seed": 1}  # what the store's card said when its runs were evaluated
    for root, card, data in (("b", embedded, "wiki"), ("a", store_then, str(store))):  # the store's runs first
        for d in write_grid(tmp_path / root, methods=("agch",) if root == "b" else ("djsrh",), seeds=(0,)):
            (d / "card.json").write_bytes(card_bytes(card))
            _set(d, dataset_card_sha256=card_sha256(card))
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            (d / "config.yaml").write_text(yaml.safe_dump({**cfg, "data": data}))
    tables = build_tables(load_results([tmp_path]), split=True)
    by_rows = {tuple(t.rows): t for t in tables}
    assert not by_rows[("agch",)].warnings  # the embedded Wiki's runs: current
    (note,) = by_rows[("djsrh",)].warnings
    assert "older 'wiki' dataset card" in note and "split_seed" in note and str(tmp_path / "a") in note


def test_a_row_label_never_shows_an_absolute_store_path(tmp_path):
    # before: the VSE++ COCO-mini row of docs/results.md read "vsepp (data=/work/stores/coco-mini-effnet, ...)"
    import yaml

    from bitrieve.report.results import row_labels

    dirs = write_grid(tmp_path, methods=("agch",), seeds=(0,), bits=(16,))
    other = write_run(tmp_path, "agch", 32, 0, 0.4, 0.4, group="agch-copy")
    for d, data in ((dirs[0], "/srv/lab/stores/wiki-a"), (other, "stores/wiki-b")):
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        (d / "config.yaml").write_text(yaml.safe_dump({**cfg, "data": data}))
    labels = sorted(row_labels(load_results([tmp_path])).values())
    assert labels == ["agch (data=.../wiki-a)", "agch (data=stores/wiki-b)"]
