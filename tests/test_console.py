"""What commands print besides results: one-line warnings (repeats summarised), progress that suits a log file,
status lines on stderr, `bitrieve --version`."""

from __future__ import annotations

import io
import re
import sys
import warnings

import pytest

from bitrieve import console


def test_warnings_are_one_line_without_source_and_repeats_are_summarised(capsys):
    with warnings.catch_warnings():  # restores the filters and handler the CLI installs
        console.install_warning_handler()
        console._counts.clear()
        for _ in range(3):
            warnings.warn("duplicate run x repeats y;\n  keeping the first")  # a multi-line message
        warnings.warn("another one", RuntimeWarning)
        warnings.warn("from numpy", FutureWarning)
        console._summarise()
        console._counts.clear()
    err = capsys.readouterr().err.splitlines()
    here = "[test_console.py]"  # a warning raised outside bitrieve names its file (never its source line)
    assert err == [f"warning: duplicate run x repeats y; keeping the first {here}", f"warning: another one {here}",
                   f"warning (FutureWarning): from numpy {here}", "(2 repeats of 1 warning above not shown)"]


def test_progress_on_a_log_file_is_whole_lines(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    assert not console.interactive()
    for _ in console.progress(range(50), desc="short", unit="img"):  # < 5 s: nothing at all
        pass
    assert log.getvalue() == ""
    for _ in console.progress(range(5), desc="epoch 1/3", per_epoch=True):  # the trainer prints epoch lines
        pass
    assert log.getvalue() == ""
    monkeypatch.setattr(console, "NON_TTY_DELAY_S", 0.0)
    monkeypatch.setattr(console, "NON_TTY_INTERVAL_S", 0.0)
    bar = console.progress(range(4), desc="decode images", unit="img")
    for _ in bar:
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines and all(line.startswith("decode images:") for line in lines) and "4/4" in lines[-1]


def test_trainer_prints_one_line_per_epoch_when_not_a_terminal(tmp_path, capsys):
    from bitrieve.config import parse_config
    from bitrieve.engine import train_run

    cfg = parse_config({"method": "toy_linear", "bits": 8, "seed": 0, "tracking": "none",
                        "params": {"epochs": 3, "batch_size": 64, "max_rows": 256},
                        "eval": {"query_limit": 30, "ks": [10]}})
    train_run(cfg, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    epochs = [line for line in err.splitlines() if re.match(r"^\w+ epoch \d/3 \(", line)]
    assert [e.split(" (")[0].split()[-1] for e in epochs] == ["1/3", "2/3", "3/3"]
    assert "bitrieve: loading data 'wiki'" in err and "bitrieve: evaluating: encoding 30 queries" in err
    train_run(cfg, tmp_path / "run", progress=False)  # finished: skipped, and silent without progress
    assert capsys.readouterr().err == ""


def test_version(capsys):
    from bitrieve import __version__
    from bitrieve.cli import main

    assert main(["--version"]) == 0  # main returns argparse's exit status (usage errors: 2, one line)
    assert capsys.readouterr().out.strip() == f"bitrieve {__version__}"


def test_no_progress_keeps_status_lines_and_quiet_drops_them(tmp_path, capsys):
    # before: --no-progress also silenced the status lines, and there was no --quiet
    import yaml

    from bitrieve.cli import main

    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump({"method": "toy_linear", "device": "cpu", "tracking": "none", "bits": 8,
                                   "params": {"epochs": 1, "batch_size": 64, "max_rows": 128},
                                   "eval": {"query_limit": 30, "ks": [10]}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "bitrieve: loading data 'wiki'" in err and "epoch 1/1" not in err  # status lines, no bars
    assert main(["train", str(cfg), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "map@all" in captured.out  # results only
    from bitrieve.engine import train_run
    from bitrieve.config import load_config

    train_run(load_config(cfg), tmp_path / "b", progress=False)  # the Python API after a command: its own choice
    assert capsys.readouterr().err == ""
