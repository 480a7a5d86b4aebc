"""Model selection on a validation split (engine/selection.py): the seeded carve, best-checkpoint keeping with
patience on a run whose best epoch is known, and `bitrieve sweep --select` testing the chosen candidate only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bitrieve.config import ConfigError, parse_config
from bitrieve.data import load_data
from bitrieve.data.store import save_store
from bitrieve.data.types import CrossModalData, Split
from bitrieve.engine import train_run
from bitrieve.engine.selection import carve_validation
from bitrieve.methods import REGISTRY
from bitrieve.methods.base import HashMethod, Params, Stage

BEST_EPOCH = 3


class ScriptedParams(Params):
    epochs: int = 10
    batch_size: int = 10_000


class Scripted(HashMethod):
    """Codes are the (class-coding) features at the end of epoch ``BEST_EPOCH`` and one constant code otherwise, so
    the validation mAP@all is exactly 1 at that epoch and lower at every other."""

    Params = ScriptedParams

    def __init__(self, params, bits, info):
        super().__init__(params, bits, info)
        self.w = torch.nn.Parameter(torch.ones(2))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def param_groups(self):
        return {"w": {"params": [self.w], "lr": 0.1}}

    def stages(self):
        return [Stage("main", self.params.epochs, self._loss, ["w"], batch_size=self.params.batch_size)]

    def _loss(self, batch):
        self.step += 1  # one batch per epoch: step = epochs trained
        return {"loss": (self.w ** 2).sum()}

    def encode(self, modality, x):
        if int(self.step) == BEST_EPOCH:
            return x[:, : self.bits].float() * 2 - 1
        return torch.ones(x.shape[0], self.bits)


@pytest.fixture
def class_store(tmp_path, monkeypatch):
    """60 train (= retrieval) / 20 query pairs of 4 classes whose features are the one-hot class."""
    monkeypatch.setitem(REGISTRY, "scripted", Scripted)
    rng = np.random.default_rng(0)

    def split(n, offset):
        cls = rng.integers(0, 4, n)
        lab = np.eye(4, dtype=np.uint8)[cls]
        feats = lab.astype(np.float32)
        return Split({"image": feats, "text": feats.copy()}, lab, np.arange(offset, offset + n))

    train = split(60, 0)
    data = CrossModalData({"train": train, "query": split(20, 60), "retrieval": train}, {"name": "classes"})
    return str(save_store(data, tmp_path / "store"))


def _cfg(store, **sel):
    return parse_config({"method": "scripted", "data": store, "bits": 4, "tracking": "none", "device": "cpu",
                         "eval": {"extra_evaluations": ["unseen-database"]}, "selection": {"size": 12, "seed": 5, **sel}})


def test_best_checkpoint_with_patience_keeps_the_known_best_epoch(class_store, tmp_path):
    res = train_run(_cfg(class_store, patience=2), tmp_path / "run", progress=False)
    sel = res["selection"]
    assert [c["epoch"] for c in sel["curve"]] == [1, 2, 3, 4, 5]  # stopped 2 validations after the best
    assert sel["best_epoch"] == BEST_EPOCH and sel["kept_epoch"] == BEST_EPOCH and sel["stopped_early"]
    assert sel["curve"][BEST_EPOCH - 1]["score"] == 1.0
    assert all(c["score"] < 1.0 for c in sel["curve"] if c["epoch"] != BEST_EPOCH)
    assert len(res["history"]) == 5
    # the test split was evaluated for the kept (epoch-3) model: perfect codes
    assert res["metrics"]["i2t"]["map@all"] == 1.0 and res["metrics"]["t2i"]["map@all"] == 1.0
    # the unseen-database protocol ran through the engine on the same kept model: perfect codes, every query whose
    # class has another query item scores 1, the others 0 (no relevant item left)
    unseen = res["protocols"]["unseen-database"]["i2t"]
    qlab = load_data(class_store)["query"].labels.argmax(1)
    expect = np.mean([float((qlab == c).sum() > 1) for c in qlab])
    assert unseen["n_retrieval"] == 19 and unseen["map@all"] == pytest.approx(expect)
    # the checkpoint holds the kept model, so `bitrieve eval` reproduces the stored numbers
    from bitrieve.engine import evaluate_run

    assert evaluate_run(tmp_path / "run", progress=False)["metrics"]["i2t"]["map@all"] == 1.0
    # without selection the last (constant-code) model is tested
    res_last = train_run(_cfg(class_store, keep="last"), tmp_path / "last", progress=False)
    assert len(res_last["selection"]["curve"]) == 10 and res_last["selection"]["kept_epoch"] == 10
    assert res_last["metrics"]["i2t"]["map@all"] < 1.0


def test_validation_carve_is_seeded_disjoint_and_stored(class_store, tmp_path):
    data = load_data(class_store)
    sel = _cfg(class_store).selection
    view, val, rec = carve_validation(data, sel)
    view2, val2, _ = carve_validation(data, sel)
    assert np.array_equal(val["query"].ids, val2["query"].ids)  # seeded: same seed, same rows
    other = _cfg(class_store, seed=6).selection
    assert not np.array_equal(carve_validation(data, other)[1]["query"].ids, val["query"].ids)
    vq = set(val["query"].ids.tolist())
    assert len(vq) == 12 and rec["ids"] == val["query"].ids.tolist()
    assert vq.isdisjoint(view["train"].ids.tolist()) and vq.isdisjoint(view["query"].ids.tolist())
    assert len(view["train"]) == 48 and len(view["query"]) == 20
    assert vq.isdisjoint(val["retrieval"].ids.tolist()) and len(val["retrieval"]) == 48  # never meets itself
    assert len(view["retrieval"]) == 60  # the test database is unchanged
    res = train_run(_cfg(class_store, evaluate_test=False, every=5), tmp_path / "run", progress=False)
    assert res["selection"]["split"]["ids"] == rec["ids"] and res["metrics"] == {}  # stored; test not evaluated


def test_query_carve_on_wiki_is_the_dgcpn_231_462_split():
    wiki = load_data("wiki")
    sel = parse_config({"method": "cca_itq", "selection": {"split": "query", "size": 231, "seed": 0}}).selection
    view, val, rec = carve_validation(wiki, sel)
    assert (len(val["query"]), len(view["query"]), len(view["train"])) == (231, 462, 2173)
    assert len(val["retrieval"]) == 2173 and rec["source"] == "query"
    assert set(val["query"].ids.tolist()).isdisjoint(view["query"].ids.tolist())


def test_selection_config_errors(class_store):
    with pytest.raises(ConfigError, match="eval.every"):
        parse_config({"method": "cca_itq", "eval": {"every": 1}, "selection": {}})
    with pytest.raises(ConfigError, match="selection.keep"):
        parse_config({"method": "cca_itq", "selection": {"keep": "median"}})
    from bitrieve.data.types import DataError

    with pytest.raises(DataError, match="no split 'dev'"):
        carve_validation(load_data(class_store), _cfg(class_store, split="dev").selection)
    with pytest.raises(DataError, match="selection.size"):
        carve_validation(load_data(class_store), _cfg(class_store, size=60).selection)
    # configs without a selection block keep their hash (no 'selection' key in the resolved config)
    assert "selection" not in parse_config({"method": "cca_itq"}).resolved()


def test_sweep_select_tests_only_the_chosen_candidate(class_store, tmp_path, capsys):
    import yaml

    from bitrieve.cli import main

    cfg = tmp_path / "scripted.yaml"
    cfg.write_text(yaml.safe_dump({"method": "scripted", "data": class_store, "bits": 4, "tracking": "none",
                                   "device": "cpu", "selection": {"size": 12, "seed": 5, "keep": "last"}}))
    root = tmp_path / "sweep"
    # epochs=3 ends on the perfect model, epochs=2 and 4 on constant codes: validation must choose epochs=3
    assert main(["sweep", str(cfg), "--grid", "params.epochs=2,3,4", "--seeds", "0", "--root", str(root),
                 "--select", "map@all", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "* epochs=3: 1.0000" in out
    record = json.loads((root / "scripted-store-selection.json").read_text())
    assert record["chosen"] == "epochs=3" and record["split"]["n_validation"] == 12
    for e in (2, 3, 4):
        res = json.loads((root / f"scripted-store-epochs={e}" / "b4-s0" / "results.json").read_text())
        assert res["selection"]["test_evaluated"] == (e == 3)
        assert bool(res["metrics"]) == (e == 3)  # the other candidates' test numbers were never computed
    assert list(record["test_of_chosen"]) == ["scripted-store-epochs=3/b4-s0"]


def test_sweep_select_finished_only_trains_nothing(class_store, tmp_path, capsys):
    import yaml

    from bitrieve.cli import main

    cfg = tmp_path / "scripted.yaml"
    cfg.write_text(yaml.safe_dump({"method": "scripted", "data": class_store, "bits": 4, "tracking": "none",
                                   "device": "cpu", "selection": {"size": 12, "seed": 5, "keep": "last"}}))
    root = tmp_path / "sweep"
    common = ["--seeds", "0", "--root", str(root), "--no-progress"]
    assert main(["sweep", str(cfg), "--grid", "params.epochs=2,3", "--set", "selection.evaluate_test=false"]
                + common) == 0
    # a wider grid: the epochs=4 candidate never trained is left out, the choice is made among the finished ones
    assert main(["sweep", str(cfg), "--grid", "params.epochs=2,3,4", "--select", "map@all", "--finished-only"]
                + common) == 0
    out = capsys.readouterr().out
    assert "epochs=4/b4-s0: not finished, left out" in out and "0 ran, 2 skipped" in out
    assert not (root / "scripted-store-epochs=4").exists()
    assert json.loads((root / "scripted-store-selection.json").read_text())["chosen"] == "epochs=3"
