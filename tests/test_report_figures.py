"""Figures are written (PNG + PDF) and draw what the stored runs contain: the plotted lines are read back from the
matplotlib Figure and compared with values recomputed here from the synthetic runs' formulas."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest

from bitrieve.data.types import CrossModalData, Split
from bitrieve.report.examples import plot_examples, top_k
from bitrieve.report.figures import _mean_curve, _series, plot_curves, plot_training
from bitrieve.report.results import load_results
from report_fixtures import value, write_grid

SEEDS = (0, 1, 2)


@pytest.fixture
def drawn(monkeypatch):
    """stem -> the Figure passed to ``save`` (still written to disk by the real ``save``)."""
    import bitrieve.report.examples as examples
    import bitrieve.report.figures as figures

    figs = {}
    real_save = figures.save

    def keep(fig, out_dir, stem):
        figs[stem] = fig
        return real_save(fig, out_dir, stem)

    monkeypatch.setattr(figures, "save", keep)
    monkeypatch.setattr(examples, "save", keep)
    return figs


def _check_files(paths, stems):
    names = {p.name for p in paths}
    assert names == {f"{stem}.{fmt}" for stem in stems for fmt in ("png", "pdf")}
    for p in paths:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")


def _lines(ax):
    """label -> (x, y) of the labelled lines (matplotlib labels unlabelled artists '_child<n>')."""
    return {line.get_label(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata())) for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_curve_and_training_figures(tmp_path, drawn):
    import json

    write_grid(tmp_path / "res", bits=(16,), seeds=SEEDS)
    runs = load_results([tmp_path / "res"])
    out = tmp_path / "fig"
    _check_files(plot_curves(runs, out, "pr"), ["pr_wiki_b16"])
    _check_files(plot_curves(runs, out, "p@n"), ["pn_wiki_b16"])
    _check_files(plot_training(runs, out), ["train_agch_wiki", "train_djsrh_wiki"])
    # PR panels: one per task, one line per method = the seeds' mean of the fixture's formulas
    # (recall 1 - exp(-3r/bits), precision level + 0.8 (1 - level) exp(-4r/bits), level = the run's mAP)
    r = np.arange(17)
    for kind, stem in (("pr", "pr_wiki_b16"), ("p@n", "pn_wiki_b16")):
        axes = [ax for ax in drawn[stem].axes if ax.get_visible() and ax.get_title()]
        assert [ax.get_title() for ax in axes] == ["I→T", "T→I"]
        for task, ax in enumerate(axes):
            lines = _lines(ax)
            assert set(lines) == {"agch", "djsrh"}
            for method, (x, y) in lines.items():
                levels = np.array([value(method, task, 0, s) for s in SEEDS])
                if kind == "pr":
                    want_y = np.mean([lv + (1 - lv) * np.exp(-4 * r / 16) * 0.8 for lv in levels], axis=0)
                    np.testing.assert_allclose(x, 1 - np.exp(-3 * r / 16))
                else:
                    n = np.array([1, 10, 50, 100, 250, 500, 1000])
                    want_y = np.mean([lv + 0.3 * np.exp(-n / 200) for lv in levels], axis=0)
                    np.testing.assert_array_equal(x, n)
                np.testing.assert_allclose(y, want_y)
    # training curves: one panel per logged quantity that changes (the constant lr is left out), one line per bit
    # length = the mean over seeds of results.json's history, epochs numbered across stages
    histories = [json.loads(p.read_text())["history"]
                 for p in sorted((tmp_path / "res" / "agch-wiki").glob("*/results.json"))]
    assert len(histories) == len(SEEDS)
    axes = [ax for ax in drawn["train_agch_wiki"].axes if ax.get_visible() and ax.get_title()]
    assert {ax.get_title() for ax in axes} == {"loss", "loss_recon", "loss_quant", "bit_balance"}
    for ax in axes:
        ((label, (x, y)),) = _lines(ax).items()
        assert label == "16 bits"
        np.testing.assert_array_equal(x, np.arange(1, len(histories[0]) + 1))
        np.testing.assert_allclose(y, np.mean([[row[ax.get_title()] for row in h] for h in histories], axis=0))
        # the stage boundary: the fixture's 'pretrain' stage has the first 6 // 3 = 2 epochs
        (boundary,) = [line for line in ax.get_lines() if line.get_label().startswith("_")]
        assert list(boundary.get_xdata()) == [2.5, 2.5]
    assert not list(out.glob(".*"))  # no temp files left behind
    # redrawn from the same runs: byte-identical files (no creation date in the PDF), so regenerating docs/ leaves
    # unchanged figures unchanged in git
    import time

    time.sleep(1.1)  # a creation date (1 s resolution) would differ now
    again = plot_curves(runs, tmp_path / "fig2", "pr")
    for p in again:
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name


def test_cli_figures(tmp_path, capsys):
    from bitrieve.cli import main

    write_grid(tmp_path / "res", methods=("agch",), bits=(16,), seeds=(0, 1))
    assert main(["figures", str(tmp_path / "res"), "--out", str(tmp_path / "f"), "--kinds", "pr"]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["pr_wiki_b16.pdf", "pr_wiki_b16.png"]
    assert main(["figures", str(tmp_path / "res"), "--out", str(tmp_path / "f"), "--kinds", "bogus"]) == 2


def test_mean_curve_and_stage_axis():
    a = {"radius": [0, 1, 2], "precision": [1.0, 0.5, None], "recall": [0.1, 0.5, 1.0]}
    b = {"radius": [0, 1, 2], "precision": [0.8, 0.3, 0.2], "recall": [0.3, 0.7, 1.0]}
    m = _mean_curve([a, b], "radius", ("precision", "recall"))
    np.testing.assert_allclose(m["precision"], [0.9, 0.4, 0.2])  # a missing value is ignored, not zero
    np.testing.assert_allclose(m["recall"], [0.2, 0.6, 1.0])
    x, ys, stages = _series([{"stage": "a", "epoch": 1, "loss": 3.0}, {"stage": "a", "epoch": 2, "loss": 2.0},
                             {"stage": "b", "epoch": 1, "loss": 1.0, "eval": {"map": 0.4}}])
    np.testing.assert_array_equal(x, [1, 2, 3])  # epochs continue across stages
    assert stages == [(0.0, "a"), (2.0, "b")]
    assert np.isnan(ys["eval/map"][0]) and ys["eval/map"][2] == 0.4


def _toy_data(n_q=6, n_db=40, c=4):
    rng = np.random.default_rng(0)

    def split(n, offset):
        lab = np.eye(c, dtype=np.uint8)[rng.integers(0, c, n)]
        return Split({"image": rng.integers(0, 255, (n, 3, 16, 16), dtype=np.uint8),
                      "text": rng.standard_normal((n, 5)).astype(np.float32)}, lab,
                     np.arange(offset, offset + n, dtype=np.int64))

    db = split(n_db, 100)
    return CrossModalData({"train": db, "query": split(n_q, 0), "retrieval": db},
                          {"name": "toy", "label_names": ["cat", "dog", "car", "tree"]})


def test_top_k_is_stable_hamming_ranking():
    q = np.array([[1, 1, 1, 1]], dtype=np.int8)
    db = np.array([[-1, -1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1], [1, -1, 1, 1]], dtype=np.int8)
    # distances 2, 1, 0, 1: ties (rows 1 and 3) keep database order
    assert top_k(q, db, 4).tolist() == [[2, 1, 3, 0]]


def test_caption_and_image_views():
    from bitrieve.data.extras import SplitWithExtras
    from bitrieve.report.examples import _item_view

    data = _toy_data()
    q = data["query"]
    caps = np.array([f"a photo number {i}" for i in range(len(q))])
    data.splits["query"] = SplitWithExtras(q.inputs, q.labels, q.ids, {"caption": caps})
    kind, text = _item_view(data, "query", "text", None)(2)
    assert (kind, text) == ("text", "a photo number 2")
    kind, img, note = _item_view(data, "query", "image", None)(2)
    assert kind == "image" and img.shape == (16, 16, 3) and note in data.card["label_names"]
    kind, text = _item_view(data, "retrieval", "text", None)(0)  # no captions there: class names + id
    assert text.startswith(data.card["label_names"][int(np.argmax(data["retrieval"].labels[0]))]) and "#100" in text


def test_retrieval_example_figure(tmp_path, drawn):
    data = _toy_data()
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 16))

    def codes(s):
        return np.where(s.labels @ w + 0.5 * rng.standard_normal((len(s), 16)) >= 0, 1, -1).astype(np.int8)

    q = {"image": codes(data["query"]), "text": codes(data["query"])}
    r = {"image": codes(data["retrieval"]), "text": codes(data["retrieval"])}
    paths = plot_examples(data, q, r, tmp_path, "examples_toy", "toy", n_queries=2, k=5)
    _check_files(paths, ["examples_toy"])
    # each figure row: the query, then its top 5 by Hamming distance (ties in database order), framed green when
    # it shares a label with the query - recomputed here by brute force
    rows = np.sort(np.random.default_rng(0).choice(len(data["query"]), size=2, replace=False))
    axes = np.array(drawn["examples_toy"].axes).reshape(4, 6)
    for ti, (qm, dm) in enumerate((("image", "text"), ("text", "image"))):
        for qi, row in enumerate(rows):
            dist = (q[qm][row][None, :] != r[dm]).sum(axis=1)
            top = np.argsort(dist, kind="stable")[:5]
            share = (data["retrieval"].labels[top] & data["query"].labels[row]).any(axis=1)
            line = axes[ti * 2 + qi]
            assert line[0].get_title() == ("I→T" if qm == "image" else "T→I") + " query"
            for j in range(5):
                assert line[j + 1].get_title() == f"#{j + 1} {'✓' if share[j] else '✗'}"
                color = tuple(line[j + 1].spines["left"].get_edgecolor())
                assert color == matplotlib.colors.to_rgba("tab:green" if share[j] else "tab:red")
            if dm == "image":  # raw images are drawn as they are stored (C, H, W -> H, W, C)
                for j in range(5):
                    np.testing.assert_array_equal(line[j + 1].get_images()[0].get_array(),
                                                  data["retrieval"].inputs["image"][top[j]].transpose(1, 2, 0))


@pytest.mark.parametrize("kind", ["pr", "p@n"])
def test_no_curves_no_figure(tmp_path, kind):
    write_grid(tmp_path / "res", methods=("agch",), bits=(16,), seeds=(0,))
    runs = load_results([tmp_path / "res"])
    for r in runs:
        r.record.curves = {}
    assert plot_curves(runs, tmp_path / "f", kind) == []


def test_embeddings_rank_by_cosine_and_groups_define_relevance():
    from bitrieve.data.extras import SplitWithExtras
    from bitrieve.report.examples import relevant

    q = np.array([[1.0, 0.0]], dtype=np.float32)
    db = np.array([[0.0, 1.0], [0.8, 0.6], [1.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    assert top_k(q, db, 4).tolist() == [[2, 1, 3, 0]]  # cosine descending, ties in database order
    lab = np.ones((4, 1), dtype=np.uint8)  # every item shares the label: only the group decides
    qs = SplitWithExtras({"text": np.zeros((1, 2))}, lab[:1], np.arange(1), {"group": np.array([7])})
    rs = SplitWithExtras({"image": np.zeros((4, 2))}, lab, np.arange(4), {"group": np.array([7, 3, 7, 1])})
    assert relevant(qs, 0, rs, np.array([2, 1, 0])).tolist() == [True, False, True]
    plain_q, plain_r = Split(qs.inputs, qs.labels, qs.ids), Split(rs.inputs, rs.labels, rs.ids)
    assert relevant(plain_q, 0, plain_r, np.array([2, 1])).tolist() == [True, True]


def test_a_long_group_label_gets_a_short_unique_file_name(tmp_path):
    """An ablation group labelled by many config differences once made a file name over the file system's 255-byte
    limit (`bitrieve figures results/` failed with 'File name too long'); long stems are shortened with a hash."""
    import matplotlib.pyplot as plt

    from bitrieve.report.figures import MAX_STEM, save

    base = "train_agch_" + "_".join(f"key{i}=value{i}" for i in range(40))
    a, b = base + "_wiki", base + "_mirflickr"  # differ only beyond the cut
    assert len(a) > 255
    paths = [p for stem in (a, b) for p in save(plt.figure(), tmp_path, stem)]
    assert all(p.is_file() and len(p.stem) <= MAX_STEM for p in paths)
    assert len({p.stem for p in paths}) == 2  # the hash keeps them apart
    short = save(plt.figure(), tmp_path, "pr_wiki_b16")  # short names are unchanged
    assert [p.name for p in short] == ["pr_wiki_b16.png", "pr_wiki_b16.pdf"]
