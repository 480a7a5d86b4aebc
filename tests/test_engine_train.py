"""The training engine on the embedded Wiki data with tiny methods: files, groups/lrs, schedules, zero stages."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from bitrieve.config import ConfigError, load_config, parse_config
from bitrieve.engine import train_run
from bitrieve.checkpoint import load_checkpoint
from bitrieve.methods import REGISTRY
from bitrieve.methods.base import HashMethod, Params, Stage


def tiny_cfg(**over):
    d = {"method": "toy_linear", "bits": 8, "seed": 0, "tracking": "none",
         "params": {"epochs": 1, "batch_size": 64, "max_rows": 256},
         "eval": {"query_limit": 60, "ks": [20]}}
    for k, v in over.items():
        d[k] = v
    return parse_config(d)


# --- test methods ---------------------------------------------------------------------------------------------------
class TwoGroupsParams(Params):
    lr_a: float = 0.1
    lr_b: float = 0.001
    milestones: list[int] = []
    unit: str = "epoch"
    schedule_groups: list[str] | None = None
    epochs: int = 1
    batch_size: int = 10_000
    max_rows: int | None = None


class TwoGroups(HashMethod):
    """loss = sum(a) + sum(b): every gradient is exactly 1, so a plain SGD step moves each weight by -lr."""

    Params = TwoGroupsParams
    seen_keys: list = []

    def __init__(self, params, bits, info):
        super().__init__(params, bits, info)
        self.a = torch.nn.Parameter(torch.zeros(3))
        self.b = torch.nn.Parameter(torch.zeros(3))
        self.proj = torch.nn.Linear(info.feature_dims["image"], bits)  # only for encode

    def param_groups(self):
        return {"a": {"params": [self.a], "lr": self.params.lr_a}, "b": {"params": [self.b], "lr": self.params.lr_b}}

    def _loss(self, batch):
        TwoGroups.seen_keys.append(sorted(batch))
        return {"loss": self.a.sum() + self.b.sum(), "rows": torch.tensor(float(len(batch["index"])))}

    def stages(self):
        p = self.params
        return [Stage("only", p.epochs, self._loss, ["a", "b"], batch_size=p.batch_size, optimizer="sgd",
                      schedule_milestones=tuple(p.milestones), schedule_unit=p.unit, max_rows=p.max_rows,
                      schedule_groups=None if p.schedule_groups is None else tuple(p.schedule_groups))]

    def encode(self, modality, x):
        return self.proj(x.float()) if modality == "image" else torch.zeros(x.shape[0], self.bits) + 1


class ImageOnlySupervised(TwoGroups):
    modalities = ("image",)
    supervised = True


class ClosedFormParams(Params):
    pass


class ClosedForm(HashMethod):
    """No stages: prepare() fits a random projection into a buffer (like CCA-ITQ)."""

    Params = ClosedFormParams
    supervised = False

    def __init__(self, params, bits, info):
        super().__init__(params, bits, info)
        self.register_buffer("w_image", torch.zeros(info.feature_dims["image"], bits))
        self.register_buffer("w_text", torch.zeros(info.feature_dims["text"], bits))

    def param_groups(self):
        return {}

    def stages(self):
        return []

    def prepare(self, train):
        for m in ("image", "text"):
            x = torch.as_tensor(train.inputs[m], dtype=torch.float32)
            getattr(self, f"w_{m}").copy_(torch.randn(x.shape[1], self.bits))

    def encode(self, modality, x):
        x = x.float()
        return (x - x.mean(0)) @ getattr(self, f"w_{modality}")


@pytest.fixture
def test_methods(monkeypatch):
    monkeypatch.setitem(REGISTRY, "two_groups", TwoGroups)
    monkeypatch.setitem(REGISTRY, "closed_form", ClosedForm)
    monkeypatch.setitem(REGISTRY, "image_only", ImageOnlySupervised)
    TwoGroups.seen_keys = []


# --- tests ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One tiny toy_linear run (2 epochs, evaluated every epoch, TensorBoard on) shared by the inspection tests."""
    run = tmp_path_factory.mktemp("toy") / "run"
    tracking = "tensorboard" if importlib.util.find_spec("tensorboard") else "none"
    cfg = tiny_cfg(params={"epochs": 2, "batch_size": 64, "max_rows": 128}, tracking=tracking,
                   eval={"every": 1, "query_limit": 60, "ks": [20]})
    return cfg, run, train_run(cfg, run, progress=False)


def test_run_directory_and_results(toy_run):
    cfg, run, res = toy_run
    for name in ("config.yaml", "card.json", "env.json", "checkpoint.safetensors", "state.json", "log.txt",
                 "results.json", "summary.txt"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["metrics"] == res["metrics"]
    assert res["schema"] == 1 and res["method"] == "toy_linear" and res["dataset"] == "wiki"
    assert res["dataset_card_sha256"] == hashlib.sha256((run / "card.json").read_bytes()).hexdigest()
    assert res["config_sha256"] == cfg.sha256() == load_config(run / "config.yaml").sha256()
    assert res["protocol"]["n_query"] == 60 and res["protocol"]["n_retrieval"] == 2173
    assert res["protocol"]["tie"] == "stable" and res["protocol"]["map"] == ["map@all", "map@20"]
    for task in ("i2t", "t2i"):
        assert 0.0 < res["metrics"][task]["map@all"] <= 1.0
        assert {"map@all", "map@20", "p@h<=2"} <= set(res["metrics"][task])
    assert [(h["stage"], h["epoch"]) for h in res["history"]] == [("main", 1), ("main", 2)]
    assert {"loss", "similarity", "quantization", "lr/image", "lr/text"} <= set(res["history"][0])
    assert set(res["diagnostics"]["method"]) == {"paired_bit_agreement", "mean_abs_h"}
    assert set(res["diagnostics"]["codes"]) == {"image", "text"}
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["seed"] == 0 and env["device"] == "cpu"
    model, _, state = load_checkpoint(run)
    assert state["stage"] == 0 and state["epoch"] == 2 and set(model) == {
        "heads.image.weight", "heads.image.bias", "heads.text.weight", "heads.text.bias"}
    assert json.loads((run / "state.json").read_text())["epoch"] == 2


def test_eval_every_epoch_logs_metrics_in_history(toy_run):
    _, run, res = toy_run
    for h in res["history"]:
        assert "eval/i2t/map@all" in h and "diag/paired_bit_agreement" in h and "codes/image/mean_bit_entropy" in h
    assert res["history"][-1]["eval/i2t/map@all"] == res["metrics"]["i2t"]["map@all"]
    if importlib.util.find_spec("tensorboard"):
        assert any((run / "events").iterdir())


def test_config_yaml_is_the_resolved_config(toy_run):
    _, run, _ = toy_run
    d = yaml.safe_load((run / "config.yaml").read_text())
    assert d["params"]["optimizer"] == "adam" and d["params"]["lr_image"] == 0.01  # defaults filled in
    assert np.isclose(d["params"]["quantization"], 0.1)


def test_skip_finished_repeat_same_seed_refuse_other_config(toy_run, tmp_path):
    cfg, run, first = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    mtime = (copy / "results.json").stat().st_mtime_ns
    assert train_run(cfg, copy, progress=False) == first  # finished: skipped, nothing rewritten
    assert (copy / "results.json").stat().st_mtime_ns == mtime
    again = train_run(cfg, tmp_path / "again", progress=False)  # same seed, fresh directory: same numbers
    assert again["metrics"] == first["metrics"] and again["history"] == first["history"]
    other = tiny_cfg(bits=16, params={"epochs": 1, "max_rows": 64})
    with pytest.raises(ConfigError, match="finished results of a different config.*--overwrite"):
        train_run(other, copy, progress=False)
    with pytest.raises(ConfigError, match="finished results of a different config"):  # --no-resume is not enough
        train_run(other, copy, resume=False, progress=False)
    with pytest.raises(ConfigError, match="--no-resume does not replace finished results"):
        train_run(cfg, copy, resume=False, progress=False)
    assert (copy / "results.json").stat().st_mtime_ns == mtime  # nothing was replaced by the refused calls
    assert train_run(other, copy, overwrite=True, progress=False)["bits"] == 16
    assert json.loads((copy / "results.json").read_text())["config_sha256"] == other.sha256()


def test_overwrite_replaces_only_a_run_directory(toy_run, tmp_path):
    cfg, run, first = toy_run
    notes = tmp_path / "mine"
    shutil.copytree(run, notes)
    (notes / "my_notes.txt").write_text("not the engine's")  # a folder that also holds someone's own file
    from bitrieve.atomic import RefusedToReplace

    with pytest.raises(RefusedToReplace, match="not a bitrieve run directory"):
        train_run(cfg, notes, overwrite=True, progress=False)
    assert (notes / "my_notes.txt").is_file() and (notes / "results.json").is_file()
    again = tmp_path / "again"
    shutil.copytree(run, again)
    (again / "results.json").write_text(json.dumps({**first, "metrics": {}}))  # recognisably old results
    res = train_run(cfg, again, overwrite=True, progress=False)
    assert res["metrics"] == first["metrics"]  # retrained from scratch: the same numbers as the first run


def test_default_run_directory_follows_the_resolved_config(tmp_path, monkeypatch, capsys):
    """`train` without --out: the config file's own settings -> runs/<method>-<data>/b<bits>-s<seed>; any --set that
    changes the resolved config -> its own directory with the first 8 hex digits of the config hash (without
    bits/seed), shared by bit lengths and seeds."""
    import hashlib

    from bitrieve.cli import main

    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(yaml.safe_dump({"method": "toy_linear", "bits": 8, "seed": 0, "tracking": "none",
                                        "params": {"epochs": 1, "batch_size": 64, "max_rows": 128},
                                        "eval": {"query_limit": 30, "ks": [10]}}))
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(cfg_file), "--no-progress"]) == 0
    assert (tmp_path / "runs" / "toy_linear-wiki" / "b8-s0" / "results.json").is_file()
    assert main(["train", str(cfg_file), "--no-progress", "--set", "params.max_rows=64", "--bits", "16"]) == 0
    over = load_config(cfg_file, ["params.max_rows=64", "bits=16"]).resolved()
    # the hash is over the key names runs were stored with: eval.extra_evaluations was eval.protocols
    over["eval"] = {("protocols" if k == "extra_evaluations" else k): v for k, v in over["eval"].items()}
    expect = hashlib.sha256(json.dumps({k: v for k, v in over.items() if k not in ("bits", "seed")},
                                       sort_keys=True).encode()).hexdigest()[:8]
    assert (tmp_path / "runs" / f"toy_linear-wiki-{expect}" / "b16-s0" / "results.json").is_file()
    # the same value as in the file is no override: the plain directory (finished, so skipped)
    assert main(["train", str(cfg_file), "--no-progress", "--set", "params.max_rows=128"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["toy_linear-wiki", f"toy_linear-wiki-{expect}"]
    # another config file of the same method and data: its own directory, named after the file
    other = tmp_path / "toy_linear_wiki_small.yaml"
    other.write_text(cfg_file.read_text())
    assert main(["train", str(other), "--no-progress"]) == 0
    assert (tmp_path / "runs" / "toy_linear-wiki-small" / "b8-s0" / "results.json").is_file()
    capsys.readouterr()
    assert main(["train", str(cfg_file), "--no-progress", "--no-resume"]) == 2  # finished results are kept
    assert "--overwrite" in capsys.readouterr().err


def test_seed_changes_initialisation():
    from bitrieve.data import load_data
    from bitrieve.engine.loading import build_method

    data = load_data("wiki")
    a, b, c = (build_method(tiny_cfg(seed=s), data) for s in (0, 0, 1))
    assert torch.equal(a.heads["image"].weight, b.heads["image"].weight)
    assert not torch.equal(a.heads["image"].weight, c.heads["image"].weight)
    assert a.info.num_train == 2173 and a.info.feature_dims == {"image": 128, "text": 10}


def test_each_group_gets_its_own_lr(tmp_path, test_methods):
    cfg = tiny_cfg(method="two_groups", params={"lr_a": 0.1, "lr_b": 0.001})
    train_run(cfg, tmp_path, progress=False)
    model, _, _ = load_checkpoint(tmp_path)
    # one full batch, one SGD step, gradient 1: the update of each group equals its own lr
    assert torch.allclose(model["a"], torch.full((3,), -0.1))
    assert torch.allclose(model["b"], torch.full((3,), -0.001))


def test_iteration_schedule_and_epoch_schedule(tmp_path, test_methods):
    # 2173 rows, batch 1000 -> 3 steps per epoch; milestone at iteration 1: steps at lr, lr/10, lr/10
    cfg = tiny_cfg(method="two_groups", params={"lr_a": 1.0, "lr_b": 0.5, "milestones": [1], "unit": "iter",
                                                "batch_size": 1000})
    res = train_run(cfg, tmp_path / "iter", progress=False)
    model, _, _ = load_checkpoint(tmp_path / "iter")
    assert torch.allclose(model["a"], torch.full((3,), -(1.0 + 0.1 + 0.1)))
    assert torch.allclose(model["b"], torch.full((3,), -(0.5 + 0.05 + 0.05)))
    assert res["history"][0]["lr/a"] == pytest.approx(0.1)
    # epoch unit, milestones (1, 2): one step per epoch at lr, lr/10, lr/100
    cfg = tiny_cfg(method="two_groups", params={"lr_a": 1.0, "lr_b": 1.0, "milestones": [1, 2], "epochs": 3})
    res = train_run(cfg, tmp_path / "epoch", progress=False)
    model, _, _ = load_checkpoint(tmp_path / "epoch")
    assert torch.allclose(model["a"], torch.full((3,), -1.11))
    assert [h["lr/a"] for h in res["history"]] == pytest.approx([1.0, 0.1, 0.01])


def test_schedule_applies_to_its_groups_only(tmp_path, test_methods):
    # milestone at iteration 1 on group "b" only (UCMFH's released scheduler touches the hash heads only):
    # a keeps lr 1.0 for its 3 steps, b steps at 0.5, 0.05, 0.05
    cfg = tiny_cfg(method="two_groups", params={"lr_a": 1.0, "lr_b": 0.5, "milestones": [1], "unit": "iter",
                                                "batch_size": 1000, "schedule_groups": ["b"]})
    res = train_run(cfg, tmp_path / "b", progress=False)
    model, _, _ = load_checkpoint(tmp_path / "b")
    assert torch.allclose(model["a"], torch.full((3,), -3.0))
    assert torch.allclose(model["b"], torch.full((3,), -(0.5 + 0.05 + 0.05)))
    assert res["history"][0]["lr/a"] == pytest.approx(1.0) and res["history"][0]["lr/b"] == pytest.approx(0.05)
    bad = tiny_cfg(method="two_groups", params={"milestones": [1], "schedule_groups": ["heads"]})
    with pytest.raises(ValueError, match="schedule_groups names \\['heads'\\]"):
        train_run(bad, tmp_path / "bad", progress=False)


def test_batches_hold_index_and_no_labels_when_unsupervised(tmp_path, test_methods):
    cfg = tiny_cfg(method="two_groups", params={"batch_size": 100, "max_rows": 250})
    res = train_run(cfg, tmp_path, progress=False)
    assert TwoGroups.seen_keys == [["image", "index", "text"]] * 3  # 250 rows in batches of 100: 3 batches
    assert res["history"][0]["rows"] == pytest.approx(250 / 3)  # per-epoch mean over batches


def test_zero_stage_method(tmp_path, test_methods):
    res = train_run(tiny_cfg(method="closed_form", bits=16, params={}), tmp_path, progress=False)
    assert res["history"] == []
    assert res["metrics"]["i2t"]["map@all"] > 0
    model, _, state = load_checkpoint(tmp_path)
    assert model["w_image"].abs().sum() > 0  # the fitted buffers are the checkpoint
    assert res["diagnostics"]["codes"]["image"]["distinct_codes"] > 100


def test_eval_command_reproduces_results(toy_run, capsys):
    from bitrieve.cli import main

    _, run, res = toy_run
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == res["metrics"] and out["checkpoint"]["epoch"] == 2
    from bitrieve.engine import load_run

    cfg, method = load_run(run, device="cpu")
    assert cfg.method == "toy_linear" and not method.training
    assert torch.equal(method.heads["text"].weight, load_checkpoint(run)[0]["heads.text.weight"])


def test_bad_config_fails_before_anything_runs(tmp_path, capsys):
    from bitrieve.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"method": "toy_linear", "params": {"epochs": 1, "lr_imgae": 0.1}}))
    assert main(["train", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "params.lr_imgae" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["train", str(bad), "--set", "params.lr_imgae=", "--bits", "0", "--out", str(tmp_path / "r")]) == 2
    assert "bits" in capsys.readouterr().err


def test_code_diagnostics_flag_collapse():
    from bitrieve.codes.diagnostics import code_diagnostics
    from bitrieve.engine.evaluation import collapse_warnings

    g = torch.Generator().manual_seed(0)
    healthy = torch.tanh(torch.randn(500, 16, generator=g))
    d = code_diagnostics(healthy)
    assert d["mean_abs_bit_balance"] < 0.2 and d["mean_bit_entropy"] > 0.95 and d["distinct_codes"] > 400
    assert 0 < d["quantization_gap"] < 1 and collapse_warnings({"image": d}) == []
    constant = healthy.clone()
    constant[:, :12] = 0.3  # 12 of 16 bits constant (and a zero counts as +1 like everywhere else)
    w = collapse_warnings({"image": code_diagnostics(constant)})
    assert any("12 of the bits are constant" in x for x in w)
    same = torch.ones(500, 16) * 0.5
    same[0] = -0.5
    d = code_diagnostics(same)
    assert d["distinct_codes"] == 2 and d["largest_code_share"] == pytest.approx(499 / 500)
    assert len(collapse_warnings({"text": d})) == 2  # shared code + balance; no bit is exactly constant
    assert code_diagnostics(torch.full((4, 2), 3.0))["quantization_gap"] == pytest.approx(1 - np.tanh(3.0), rel=1e-5)


def test_optimizer_state_round_trips_through_safetensors(tmp_path):
    from bitrieve.checkpoint import save_checkpoint, unflatten_optimizer

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam([{"params": [model.weight], "lr": 0.1, "name": "w"},
                            {"params": [model.bias], "lr": 0.01, "name": "b"}])
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, model, opt, {"stage": 0, "epoch": 1, "history": []})
    m, o, state = load_checkpoint(tmp_path)
    opt2 = torch.optim.Adam([{"params": [model.weight], "lr": 1.0, "name": "w"},
                             {"params": [model.bias], "lr": 1.0, "name": "b"}])
    opt2.load_state_dict(unflatten_optimizer(o, state["optimizer"]))
    a, b = opt.state_dict(), opt2.state_dict()
    assert [g["lr"] for g in b["param_groups"]] == [0.1, 0.01]
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][pid][k]))
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files


def test_single_modal_supervised_method_gets_labels_and_i2i(tmp_path, test_methods):
    res = train_run(tiny_cfg(method="image_only", params={"batch_size": 1000, "max_rows": 1000}), tmp_path,
                    progress=False)
    assert TwoGroups.seen_keys == [["image", "index", "label"]]
    assert set(res["metrics"]) == {"i2i"} and res["protocol"]["tasks"] == ["i2i"]
    assert set(res["diagnostics"]["codes"]) == {"image"}


def test_device_errors_name_the_key():
    from bitrieve.devices import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="key 'device'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path, test_methods, amp):
    res = train_run(tiny_cfg(method="two_groups", amp=amp, params={"lr_a": 0.5}), tmp_path, progress=False)
    assert res["history"][0]["loss"] == pytest.approx(0.0)  # a, b start at zero
    model, _, state = load_checkpoint(tmp_path)
    assert torch.allclose(model["a"], torch.full((3,), -0.5))  # fp16: the GradScaler unscales before the step
    assert ("scale" in state["scaler"]) == (amp == "fp16")
