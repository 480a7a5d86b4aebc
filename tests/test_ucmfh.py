"""UCMFH (official) and the fork's variant: golden tests (gradients, bit width), uni-modality, released quirks.

The variant's forward pass is compared with the fork's released modules in tests/test_parity.py."""

import numpy as np
import pytest
import torch

from bitrieve.codes.encode import encode_pairs
from bitrieve.data.types import Split
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo

SMALL = dict(modality_dim=16, nhead=2, dim_feedforward=32, head_hidden=32, batch_size=8, max_rows=None)


def _info(dims=(12, 6), n=40):
    return DataInfo(feature_dims={"image": dims[0], "text": dims[1]}, input_shapes={"image": (dims[0],),
                    "text": (dims[1],)}, num_labels=3, num_train=n)


def _batch(dims=(12, 6), n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, dims[0], generator=g), "text": torch.randn(n, dims[1], generator=g),
            "index": torch.arange(n)}


def _build(name, bits=16, dims=(12, 6), **kw):
    cls = get_method(name)
    torch.manual_seed(0)
    return cls(cls.Params(**kw), bits, _info(dims))


def _assert_all_params_get_gradient(method, stage):
    method.train()
    method.zero_grad()
    out = stage.loss(_batch(tuple(method.info.feature_dims.values())))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    groups = method.param_groups()
    trained = [p for g in stage.groups for p in groups[g]["params"]]
    assert trained, "stage trains nothing"
    missing = [n for n, p in method.named_parameters() if any(p is q for q in trained)
               and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, f"parameters without gradient: {missing}"
    # every trainable parameter belongs to some group
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    orphans = [n for n, p in method.named_parameters() if p.requires_grad and id(p) not in grouped]
    assert not orphans, f"parameters in no group: {orphans}"


@pytest.mark.parametrize("name", ["ucmfh", "ucmfh_variant"])
@pytest.mark.parametrize("loss", ["ntxent", "balanced"])
def test_every_parameter_gets_a_gradient(name, loss):
    m = _build(name, loss=loss, **SMALL)
    _assert_all_params_get_gradient(m, m.stages()[-1])


@pytest.mark.parametrize("name", ["ucmfh", "ucmfh_variant"])
def test_bits_change_output_width(name):
    for bits in (8, 24):
        m = _build(name, bits=bits, **SMALL).eval()
        for mod, x in (("image", torch.randn(5, 12)), ("text", torch.randn(5, 6))):
            assert m.encode(mod, x).shape == (5, bits)


def test_official_parameter_count_and_projection_rule():
    # CLIP widths: no projection, ~22M parameters at 128 bits (paper / released code)
    m = get_method("ucmfh")(get_method("ucmfh").Params(), 128, _info((512, 512)))
    n = sum(p.numel() for p in m.parameters())
    assert 21.5e6 < n < 22.5e6
    assert isinstance(m.project["image"], torch.nn.Identity)
    # Wiki widths: learned Linear(d, 512)
    w = get_method("ucmfh")(get_method("ucmfh").Params(), 32, _info((128, 10)))
    assert isinstance(w.project["text"], torch.nn.Linear) and w.project["text"].in_features == 10


TINY = dict(modality_dim=16, nhead=2, dim_feedforward=32, head_hidden=32)  # stage settings do not depend on sizes


def test_stages_and_optimisers_follow_the_paper():
    m = _build("ucmfh", **TINY)
    (stage,) = m.stages()
    assert stage.optimizer == "adam" and stage.optimizer_kwargs["betas"] == (0.5, 0.999)
    assert stage.batch_size == 128 and stage.max_rows == 4992 and stage.groups == ["fusion", "heads"]
    g = m.param_groups()
    assert g["fusion"]["lr"] == 1e-4 and g["heads"]["lr"] == 1e-3
    # released ICMR.py:44-49: the heads' lr x1.2 at iterations 30 and 80 (the default); `none` is the switch
    assert stage.schedule_milestones == (30, 80) and stage.schedule_gamma == 1.2 and stage.schedule_unit == "iter"
    assert stage.schedule_groups == ("heads",)
    assert not _build("ucmfh", head_schedule="none", **TINY).stages()[-1].schedule_milestones
    assert [s.name for s in _build("ucmfh", pretrain_epochs=3, **TINY).stages()] == ["fusion", "hash"]
    # the fork (hashNetVersion): one hash stage from a fresh model, 100 epochs, MLP lr x1.2 at iterations 30, 80
    (only,) = _build("ucmfh_variant", **TINY).stages()
    assert (only.name, only.groups, only.epochs) == ("hash", ["encoders", "heads"], 100)
    assert (only.schedule_milestones, only.schedule_gamma, only.schedule_unit, only.schedule_groups) == \
        ((30, 80), 1.2, "iter", ("heads",))
    assert only.optimizer == "adam" and only.batch_size == 128 and only.max_rows == 4992 and only.drop_last
    v = _build("ucmfh_variant", encoder_epochs=3, **SMALL)  # switch: an encoders-only stage first
    s1, s2 = v.stages()
    assert (s1.name, s1.groups, s1.epochs) == ("encoders", ["encoders"], 3)
    assert (s2.name, s2.groups, s2.epochs) == ("hash", ["encoders", "heads"], 100)
    out1 = s1.loss(_batch())
    assert set(out1) == {"loss", "contrastive_embedding"}
    out2 = s2.loss(_batch())
    assert torch.allclose(out2["loss"], out2["contrastive_embedding"] + 0.5 * out2["contrastive_hash"])


@pytest.mark.parametrize("name", ["ucmfh", "ucmfh_variant"])
def test_encode_is_unimodal_and_per_sample(name):
    m = _build(name, **SMALL)
    rng = np.random.default_rng(0)
    train = Split({"image": rng.normal(size=(40, 12)).astype(np.float32) + 3.0,
                   "text": rng.normal(size=(40, 6)).astype(np.float32) - 2.0},
                  np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 40)], np.arange(40))
    m.prepare(train)
    assert torch.allclose(m.fill_text, torch.as_tensor(train.inputs["text"]).mean(0))
    m.eval()
    x = torch.randn(6, 12)
    full = m.encode("image", x)
    assert torch.allclose(m.encode("image", x[:2]), full[:2], atol=1e-6)  # no dependence on other samples
    # the code is the pair code with the text replaced by the training mean
    pair_v, _ = m.encode_pair(x, m.fill_text.expand(6, -1))  # the batch hook
    assert torch.allclose(full, pair_v, atol=1e-6)


def test_released_whole_batch_sequence_quirk_couples_samples():
    m = _build("ucmfh", **SMALL).eval()
    b = _batch(n=6)
    image, text = b["image"].numpy(), b["text"].numpy()
    alone, _ = encode_pairs(m, image[:2], text[:2], whole_batch_sequence=True)
    together, _ = encode_pairs(m, image, text, whole_batch_sequence=True)
    assert not torch.allclose(alone, together[:2], atol=1e-4)  # codes depend on the evaluation batch
    by_three, _ = encode_pairs(m, image, text, batch_size=3, whole_batch_sequence=True)
    assert torch.allclose(by_three[3:], encode_pairs(m, image[3:], text[3:], whole_batch_sequence=True)[0], atol=1e-6)
    clean_alone, _ = encode_pairs(m, image[:2], text[:2])
    clean, _ = encode_pairs(m, image, text)
    assert torch.allclose(clean_alone, clean[:2], atol=1e-6)
    dropped, _ = encode_pairs(m, image, text, batch_size=4, drop_last=True)
    assert dropped.shape[0] == 4  # the released loaders' drop_last loses the last incomplete batch
    assert torch.allclose(dropped, clean[:4], atol=1e-6)


def test_config_rejects_unknown_loss():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        get_method("ucmfh").Params(loss="triplet")


def test_unimodal_training_switch_trains_on_what_encode_sees():
    from bitrieve.losses.contrastive import contrastive

    m = _build("ucmfh", unimodal_training=1.0, **SMALL).eval()  # eval: no dropout, exact comparison
    b = _batch()
    out = m.stages()[-1].loss(b)
    ref = contrastive("ntxent", m.encode("image", b["image"]), m.encode("text", b["text"]))
    assert torch.allclose(out["contrastive_hash"], ref, atol=1e-6)
    faithful = _build("ucmfh", **SMALL).eval()  # default 0.0: the paper's pair tokens
    out0 = faithful.stages()[-1].loss(b)
    ref0 = contrastive("ntxent", faithful.encode("image", b["image"]), faithful.encode("text", b["text"]))
    assert not torch.allclose(out0["contrastive_hash"], ref0, atol=1e-4)


def test_released_head_schedule_scales_only_the_heads():
    stage = _build("ucmfh", head_schedule="released", **TINY).stages()[-1]
    assert stage.schedule_groups == ("heads",)


@pytest.mark.parametrize("name", ["ucmfh", "ucmfh_variant", "agch_fusion_balanced"])
def test_pair_input_evaluations_run_through_the_engine(tmp_path, name):
    """eval.extra_evaluations [ucmfh-pair-input, pair-input] -> labelled blocks in results.json, beside uni-modal
    metrics; the pair-input codes use both modalities, so they differ from the uni-modal ones."""
    from bitrieve.config import parse_config
    from bitrieve.engine import train_run

    params = {**SMALL, "max_rows": 256, "batch_size": 64}
    params.update({"epochs": 1} if name != "ucmfh_variant" else {"hash_epochs": 1})
    protocols = ["ucmfh-pair-input", "pair-input"] + (["fork-pair-input"] if name == "ucmfh_variant" else [])
    cfg = parse_config({"method": name, "bits": 16, "seed": 0, "tracking": "none", "params": params,
                        "eval": {"ks": [50], "map_all": True, "extra_evaluations": protocols}})
    res = train_run(cfg, tmp_path, progress=False)
    if name == "ucmfh_variant":  # the fork's evaluation: per-item sequences, last incomplete batch of 128 dropped
        fork = res["protocols"]["fork-pair-input"]["i2t"]
        assert (fork["n_query"], fork["n_retrieval"]) == (640, 2048) and 0.0 < fork["map@50"] <= 1.0
    for proto in ("ucmfh-pair-input", "pair-input"):
        block = res["protocols"][proto]
        assert "NOT uni-modal" in block["description"]
        for task in ("i2t", "t2i"):
            assert 0.0 < block[task]["map@50"] <= 1.0 and 0.0 < block[task]["map@all"] <= 1.0
    # released quirk: the last incomplete batch of 128 is dropped (Wiki: 693 queries -> 640, 2,173 items -> 2,048)
    assert res["protocols"]["ucmfh-pair-input"]["i2t"]["n_query"] == 640
    assert res["protocols"]["ucmfh-pair-input"]["i2t"]["n_retrieval"] == 2048
    assert res["protocols"]["pair-input"]["i2t"]["n_query"] == 693
    # the report reads them by name
    from bitrieve.report.results import load_result

    r = load_result(tmp_path / "results.json")
    assert r.metric("i2t", "pair-input:map@50") == pytest.approx(res["protocols"]["pair-input"]["i2t"]["map@50"])


def test_fork_pair_input_codes_items_one_by_one():
    m = _build("ucmfh_variant", **SMALL).eval()
    b = _batch(n=6)
    alone, _ = encode_pairs(m, b["image"][:2].numpy(), b["text"][:2].numpy())
    together, _ = encode_pairs(m, b["image"].numpy(), b["text"].numpy())
    assert torch.allclose(alone, together[:2], atol=1e-6)  # no item sees another (ICMR.py:159-165, model.py:23)
    from bitrieve.engine.evaluation import evaluate_extra

    with pytest.raises(ValueError, match="method 'ucmfh' offers no extra evaluation 'fork-pair-input'"):
        evaluate_extra(_build("ucmfh", **SMALL), "fork-pair-input", None, None)


def test_unknown_extra_evaluation_fails_before_training(tmp_path):
    from bitrieve.config import parse_config
    from bitrieve.engine import train_run

    cfg = parse_config({"method": "ucmfh", "bits": 16, "tracking": "none", "params": {**SMALL, "epochs": 1},
                        "eval": {"extra_evaluations": ["pair-inptu"]}})
    with pytest.raises(ValueError, match="eval.extra_evaluations: unknown evaluation 'pair-inptu'"):
        train_run(cfg, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.safetensors").exists()
    # the old key name still works
    cfg = parse_config({"method": "cca_itq", "bits": 16, "tracking": "none", "eval": {"protocols": ["pair-input"]}})
    with pytest.raises(ValueError, match="known: .*dcmh"):
        train_run(cfg, tmp_path / "cca", progress=False)
