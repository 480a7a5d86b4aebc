"""Sweep expansion, skipping and resuming, with a fake train_run (no training)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from bitrieve.config import ConfigError
from bitrieve.report.sweep import expand, load_base, parse_grid, run_sweep, status
from report_fixtures import synthetic_results

BASE = {"method": "cca_itq", "data": "wiki", "bits": 32, "seed": 0, "params": {"anchors": 50}}


class FakeTrain:
    """Records calls; writes results.json like the engine (config sha256 of the run's config)."""

    def __init__(self, fail_on: set[tuple[int, int]] = frozenset()):
        self.calls: list[tuple[str, int, int, bool]] = []
        self.fail_on = fail_on

    def __call__(self, cfg, run_dir, resume=True, progress=True):
        self.calls.append((cfg.method, cfg.bits, cfg.seed, resume))
        if (cfg.bits, cfg.seed) in self.fail_on:
            raise RuntimeError("boom")
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        res = {**synthetic_results(cfg.method, cfg.bits, cfg.seed, 0.5, 0.5), "config_sha256": cfg.sha256()}
        (run_dir / "results.json").write_text(json.dumps(res))
        return res


def test_grid_expansion_and_layout(tmp_path):
    points = expand(BASE, "cfg.yaml", [16, 32], [0, 1, 2], grid=parse_grid(["params.kernel=true,false"]),
                    root=tmp_path)
    assert len(points) == 2 * 2 * 3
    names = {p.run_dir.relative_to(tmp_path).as_posix() for p in points}
    assert "cca_itq-wiki-kernel=true/b16-s0" in names and "cca_itq-wiki-kernel=false/b32-s2" in names
    p = next(p for p in points if p.run_dir.parent.name.endswith("kernel=false") and p.cfg.bits == 32)
    assert p.cfg.method_params().kernel is False and p.cfg.params["anchors"] == 50
    # no grid: bits/seeds default to the config's own
    (only,) = expand(BASE, "cfg.yaml", None, None, root=tmp_path)
    assert only.run_dir == tmp_path / "cca_itq-wiki" / "b32-s0"


def test_skips_finished_and_resumes_partial(tmp_path):
    points = expand(BASE, "cfg.yaml", [16, 32], [0, 1], root=tmp_path)
    fake = FakeTrain()
    out = io.StringIO()
    s = run_sweep(points, train_run=fake, out=out)
    assert len(fake.calls) == 4 and len(s.ran) == 4 and all(c[3] for c in fake.calls)
    assert all(status(p) == "done" for p in points)
    # an interrupted run: started directory without results
    (points[1].run_dir / "results.json").unlink()
    (points[1].run_dir / "state.json").write_text("{}")
    assert status(points[1]) == "partial"
    fake2 = FakeTrain()
    out = io.StringIO()
    s = run_sweep(points, train_run=fake2, out=out)
    assert fake2.calls == [("cca_itq", points[1].cfg.bits, points[1].cfg.seed, True)]
    assert len(s.skipped) == 3
    log = out.getvalue()
    assert "skipped" in log and "resuming" in log and "[2/4]" in log


def test_changed_config_is_refused_before_running(tmp_path):
    points = expand(BASE, "cfg.yaml", [16], [0, 1], root=tmp_path)
    run_sweep(points, train_run=FakeTrain(), out=io.StringIO())
    changed = expand(dict(BASE, params={"anchors": 60}), "cfg.yaml", [16], [0, 1], root=tmp_path)
    fake = FakeTrain()
    with pytest.raises(ConfigError, match="different config"):
        run_sweep(changed, train_run=fake, out=io.StringIO())
    assert fake.calls == []


@pytest.mark.parametrize("base, sets, grid, key", [
    (dict(BASE, params={"anchorz": 5}), [], [], "params.anchorz"),
    (BASE, ["eval.tei=stable"], [], "eval.tei"),
    (BASE, [], ["params.kernel=true,maybe"], "params.kernel"),
    (dict(BASE, devcie="cpu"), [], [], "devcie"),
])
def test_config_typo_fails_before_any_run(tmp_path, base, sets, grid, key):
    fake = FakeTrain()
    with pytest.raises(ConfigError) as e:
        points = expand(base, "cfg.yaml", [16, 32], [0, 1], sets=sets, grid=parse_grid(grid), root=tmp_path)
        run_sweep(points, train_run=fake, out=io.StringIO())
    assert key in str(e.value) and "nothing was run" in str(e.value)
    assert fake.calls == [] and not any(tmp_path.iterdir())


def test_failed_point_does_not_stop_the_others(tmp_path):
    points = expand(BASE, "cfg.yaml", [16, 32], [0], root=tmp_path)
    fake = FakeTrain(fail_on={(16, 0)})
    out = io.StringIO()
    s = run_sweep(points, train_run=fake, out=out)
    assert len(fake.calls) == 2 and len(s.failed) == 1 and len(s.ran) == 1
    assert "FAILED" in out.getvalue() and "RuntimeError: boom" in out.getvalue()


def test_cli_sweep(tmp_path, monkeypatch, capsys):
    import bitrieve.engine
    from bitrieve.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(BASE))
    fake = FakeTrain()
    monkeypatch.setattr(bitrieve.engine, "train_run", fake, raising=False)
    root = tmp_path / "res"
    argv = ["sweep", str(cfg), "--bits", "16,32", "--seeds", "0,1", "--root", str(root), "--no-progress"]
    assert main(argv + ["--dry-run"]) == 0 and fake.calls == []
    assert main(argv) == 0 and len(fake.calls) == 4
    assert main(argv) == 0 and len(fake.calls) == 4  # all finished: skipped
    assert "4 skipped" in capsys.readouterr().out
    assert main(argv + ["--set", "params.anchorz=3"]) == 2
    assert "params.anchorz" in capsys.readouterr().err
    assert main(["sweep", str(cfg), "--bits", "16,x"]) == 2
    assert load_base(cfg)["method"] == "cca_itq"


def test_finished_on_another_device_counts_as_finished(tmp_path):
    from bitrieve.config import dump_config

    (p_gpu,) = expand(BASE, "cfg.yaml", [16], [0], sets=["device=cuda"], root=tmp_path)
    FakeTrain()(p_gpu.cfg, p_gpu.run_dir)
    (p_gpu.run_dir / "config.yaml").write_text(dump_config(p_gpu.cfg))  # the engine writes the resolved config
    (p_cpu,) = expand(BASE, "cfg.yaml", [16], [0], sets=["device=cpu"], root=tmp_path)
    assert p_cpu.cfg.sha256() != p_gpu.cfg.sha256() and status(p_cpu) == "done"
    (p_other,) = expand(BASE, "cfg.yaml", [16], [0], sets=["params.anchors=7"], root=tmp_path)
    assert status(p_other) == "stale"


@pytest.mark.slow  # a CLI process (torch import) + figures: ~15 s on the shared 2-core machine
def test_make_results_script_report_only(tmp_path):
    """scripts/make_results.sh with REPORT_ONLY=1 and a page spec over synthetic runs: the page and figures appear."""
    import os
    import subprocess
    import sys

    import yaml
    from report_fixtures import write_grid

    repo = Path(__file__).resolve().parents[1]
    write_grid(tmp_path / "res", methods=("djsrh",), bits=(16,), seeds=(0, 1))
    spec = tmp_path / "page.yaml"
    spec.write_text(yaml.safe_dump({
        "output": str(tmp_path / "docs" / "results.md"), "figures": str(tmp_path / "docs" / "figures"),
        "root": str(tmp_path / "res"),
        "sections": [{"id": "wiki", "title": "Wiki", "paths": [str(tmp_path / "res")], "figures": ["pr", "train"]}]}))
    env = dict(os.environ, PY=sys.executable, REPORT_ONLY="1", SPEC=str(spec))
    out = subprocess.run(["bash", str(repo / "scripts" / "make_results.sh")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "docs" / "results.md").read_text()
    assert "### mAP@all" in md and "djsrh" in md
    assert "![pr_wiki_b16](figures/wiki/pr_wiki_b16.png)" in md
    assert (tmp_path / "docs" / "figures" / "wiki" / "train_djsrh_wiki.pdf").stat().st_size > 5000


def test_linked_grid_keys_move_together():
    from bitrieve.report.sweep import expand, grid_tag, parse_grid

    grid = parse_grid(["params.standardize_inputs+params.lr_image=none+0.0001,both+0.01", "params.lam=5,20"])
    assert grid[0] == ("params.standardize_inputs+params.lr_image", [("none", 0.0001), ("both", 0.01)])
    base = {"method": "agch", "data": "wiki", "params": {"epochs": 1}}
    pts = expand(base, "cfg.yaml", [16], [0], [], grid, "root")
    got = sorted((p.cfg.params["standardize_inputs"], p.cfg.params["lr_image"], p.cfg.params["lam"]) for p in pts)
    assert got == [("both", 0.01, 5), ("both", 0.01, 20), ("none", 0.0001, 5), ("none", 0.0001, 20)]
    assert grid_tag(pts[0].assignments) == "standardize_inputs+lr_image=none+0.0001+lam=5"
    with pytest.raises(ConfigError, match="linked keys need 2"):
        parse_grid(["params.a+params.b=1,2+3"])
