"""AGCH method: parameter groups, gradients, code width, diagnostics, paper configs, engine run."""

from pathlib import Path

import pytest
import torch

from bitrieve.config import load_config
from bitrieve.methods import get_method
from bitrieve.methods.agch import AGCH, AGCHParams
from bitrieve.methods.base import DataInfo

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _info(image_shape=(12,), text=5):
    dim = 1
    for d in image_shape:
        dim *= d
    return DataInfo({"image": dim, "text": text}, {"image": image_shape, "text": (text,)}, 3, 40)


def _batch(n=6, d=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, d, generator=g), "text": torch.rand(n, k, generator=g)}


def test_registered_and_paper_defaults():
    assert get_method("agch") is AGCH
    p = AGCHParams()
    assert (p.lr_image, p.lr_text, p.lr_gcn, p.lr_fusion) == (1e-4, 1e-2, 1e-3, 1e-2)
    assert (p.alpha, p.beta, p.lam, p.delta, p.gamma_v, p.gamma_t, p.rho) == (1, 1, 10, 0.01, 2, 0.3, 4)
    assert (p.batch_size, p.momentum, p.weight_decay, p.hidden, p.gcn_dims) == (32, 0.9, 5e-4, 4096, [2048, 2048])
    with pytest.raises(Exception, match="lamda"):
        AGCHParams(lamda=1)


def test_param_groups_learning_rates_and_stage():
    m = AGCH(AGCHParams(hidden=16, gcn_dims=[8, 8]), 8, _info())
    groups = m.param_groups()
    assert {k: g["lr"] for k, g in groups.items()} == {"image": 1e-4, "text": 1e-2, "gcn": 1e-3, "fusion": 1e-2}
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids))  # no parameter in two groups
    assert set(ids) == {id(p) for p in m.parameters() if p.requires_grad}  # every trainable parameter in one
    assert {id(p) for p in groups["image"]["params"]} == {id(p) for p in m.image_encoder.parameters()}
    assert {id(p) for p in groups["fusion"]["params"]} == {id(p) for p in m.fusion.parameters()}
    (stage,) = m.stages()
    assert stage.groups == ["image", "text", "gcn", "fusion"] and stage.optimizer == "sgd"
    assert stage.optimizer_kwargs == {"momentum": 0.9, "weight_decay": 5e-4}
    assert stage.batch_size == 32 and stage.epochs == 40
    ablated = AGCH(AGCHParams(hidden=16, gcn_dims=[8], use_gcn=False, use_fusion=False), 8, _info())
    assert set(ablated.param_groups()) == {"image", "text"}


@pytest.mark.parametrize("kw", [{}, {"adjacency": "rescaled", "fusion_input": "hidden", "reduction": "sum"},
                                {"use_fusion": False}, {"similarity_metric": "cosine_text_euclidean_image"}])
def test_every_trainable_parameter_gets_a_gradient(kw):
    torch.manual_seed(0)
    m = AGCH(AGCHParams(hidden=16, gcn_dims=[8, 8], **kw), 8, _info())
    out = m.loss(_batch())
    assert torch.isfinite(out["loss"]) and {"L1", "L2", "L3"} <= set(out)
    out["loss"].backward()
    for name, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_default_widths_gradient():
    # the paper's widths (4096 encoders, 4096 -> 2048 -> 2048 -> c GCNs): one step, all parameters reached
    m = AGCH(AGCHParams(), 16, _info())
    m.loss(_batch(n=4))["loss"].backward()
    assert m.gcn_image.convs[0].linear.weight.shape == (2048, 4096)
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.parameters())


@pytest.mark.parametrize("bits", [7, 16, 64])
def test_code_length_sets_output_width(bits):
    m = AGCH(AGCHParams(hidden=16, gcn_dims=[8]), bits, _info())
    b = _batch()
    assert m.encode("image", b["image"]).shape == (6, bits)
    assert m.encode("text", b["text"]).shape == (6, bits)
    codes = m.forward_codes(b, {"S_raw": torch.eye(6), "S": torch.eye(6)})
    assert {k: v.shape[1] for k, v in codes.items()} == {k: bits for k in ("v", "t", "h", "gv", "gt")}
    with pytest.raises(ValueError, match="modality"):
        m.encode("audio", b["text"])


def test_similarity_target_is_frozen_and_from_inputs():
    m = AGCH(AGCHParams(hidden=16, gcn_dims=[8], gamma_v=1.0, gamma_t=0.8), 8, _info())
    b = _batch()
    s = m.similarity(b)
    assert not s.requires_grad and s.shape == (6, 6)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    assert torch.equal(m.similarity(b), s)  # does not depend on the network


def test_diagnostics_keys_and_label_correlation():
    torch.manual_seed(0)
    # features = labels (plus a constant) -> S is a function of label agreement -> correlation near 1
    labels = torch.eye(3)[torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])]
    batch = {"image": torch.cat([labels, torch.zeros(8, 9)], 1) + 0.01,
             "text": torch.cat([labels, torch.zeros(8, 2)], 1) + 0.01}
    m = AGCH(AGCHParams(hidden=16, gcn_dims=[8]), 8, _info())
    d = m.diagnostics(batch, labels)
    assert d["s_label_corr"] > 0.95
    for k in ("bit_balance_v", "bit_entropy_t", "agree_v_t", "agree_gv_v", "quant_gap_v", "gcn_weight_abs",
              "gcn_out_abs", "loss_L1", "loss_L2", "loss_L3", "loss_loss"):
        assert k in d and d[k] == d[k], k
    assert 0.0 <= d["bit_entropy_t"] <= 1.0 and 0.0 <= d["bit_balance_v"] <= 1.0
    assert m.training  # restored


def test_alexnet_mode_random_init_tiny_images():
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    info = _info(image_shape=(3, 64, 64), text=5)
    m = AGCH(AGCHParams(input_mode="alexnet", hidden=16, gcn_dims=[8]), 8, info)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=g),
             "text": torch.rand(3, 5, generator=g)}
    out = m.loss(batch)
    out["loss"].backward()
    assert m.image_encoder.hash.fc.weight.grad is not None
    assert all(p.grad is None for p in m.image_reference.parameters())  # the similarity network stays frozen
    assert m.encode("image", batch["image"]).shape == (3, 8)
    frozen = AGCH(AGCHParams(input_mode="alexnet", alexnet_trainable=False, hidden=16, gcn_dims=[8]), 8, info)
    assert {id(p) for p in frozen.param_groups()["image"]["params"]} == {
        id(p) for p in frozen.image_encoder.hash.parameters()}
    with pytest.raises(FileNotFoundError, match="weights"):
        AGCH(AGCHParams(input_mode="alexnet", weights="/nonexistent/alexnet.pth"), 8, info)


@pytest.mark.parametrize("name,lam,epochs", [("agch_wiki", 5.0, 150), ("agch_mirflickr25k", 10.0, 40),
                                             ("agch_nuswide", 5.0, 80), ("agch_mscoco", 10.0, 40)])
def test_paper_configs(name, lam, epochs):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    p = cfg.method_params()
    assert cfg.method == "agch" and p.lam == lam and p.epochs == epochs and p.rho == 4.0 and p.delta == 0.01
    if name == "agch_wiki":
        assert (p.alpha, p.beta, p.gamma_v, p.gamma_t) == (0.4, 0.3, 1.0, 0.8)
    else:
        assert (p.alpha, p.beta, p.gamma_v, p.gamma_t) == (1.0, 1.0, 2.0, 0.3)
        # the feature-mode choices (docs/methods/agch.md, 'Feature mode at benchmark shapes'), nothing else changed
        assert (p.standardize_inputs, p.lr_image, p.renormalize_similarity, p.neutral_point, p.neutral_quantile,
                p.lr_gcn) == ("both", 0.01, True, "quantile", 0.8, 0.1)
        assert p.lr_gcn * p.delta == pytest.approx(AGCHParams().lr_gcn)  # the GCN steps L2 at the paper's 1e-3
        assert (p.reduction, p.fusion_input, p.gcn_self_loops, p.distance_form) == ("pairs", "hidden", False, "norm")


def _pair_features(n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 12, generator=g) ** 3, "text": (torch.rand(n, 5, generator=g) > 0.6).float()}


def test_quantile_neutral_point_is_fitted_on_training_pairs_and_shifts_the_target():
    inputs = {k: v.numpy() for k, v in _pair_features().items()}
    params = AGCHParams(hidden=16, gcn_dims=[8], batch_size=8, renormalize_similarity=True, neutral_point="quantile",
                        neutral_quantile=0.7)
    m = AGCH(params, 8, _info())
    assert "similarity_neutral" in m.state_dict()  # restored from a checkpoint with the model
    s0 = m.fit_neutral_point(inputs, batches=5, seed=3)
    # independent reference: the same 5 batches (numpy's default_rng(3)), C ⊙ D re-typed from Eqs. 8-11 with Z̃
    # re-normalised, every off-diagonal pair pooled, then numpy's linear-interpolation quantile
    import numpy as np

    rng, pooled = np.random.default_rng(3), []
    for _ in range(5):
        rows = np.sort(rng.choice(40, 8, replace=False))
        xv = inputs["image"][rows].astype(np.float64)
        xt = inputs["text"][rows].astype(np.float64)
        z = np.hstack([2.0 * xv / np.linalg.norm(xv, axis=1, keepdims=True),
                       0.3 * xt / np.maximum(np.linalg.norm(xt, axis=1, keepdims=True), 1e-12)])
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        c = z @ z.T
        d = np.exp(-np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1)) / 4.0)
        pooled.append((c * d)[~np.eye(8, dtype=bool)])
    assert s0 == pytest.approx(float(np.quantile(np.concatenate(pooled), 0.7)), abs=1e-5)
    assert (np.concatenate(pooled) < s0).mean() == pytest.approx(0.7, abs=0.02)
    # the target is 2 (C ⊙ D − s₀): the paper's 2S − 1 shifted by 1 − 2 s₀
    m.similarity_neutral.fill_(s0)
    batch = {k: torch.as_tensor(v[:8]) for k, v in inputs.items()}
    s, parts = m.similarity(batch, return_parts=True)
    assert torch.allclose(s, 2 * (parts["S_raw"] - s0), atol=1e-6)
    paper = AGCH(params.model_copy(update={"neutral_point": "paper"}), 8, _info())
    assert "similarity_neutral" not in paper.state_dict()  # the paper's setting keeps its state_dict keys
    assert torch.allclose(paper.similarity(batch), 2 * parts["S_raw"] - 1, atol=1e-6)
    with pytest.raises(ValueError, match="feature-mode"):
        AGCH(AGCHParams(input_mode="alexnet", neutral_point="quantile", hidden=16, gcn_dims=[8]), 8,
             _info(image_shape=(3, 8, 8)))


def test_demo_config_is_the_paper_wiki_setting_but_smaller_and_validation_chosen():
    demo = load_config(CONFIGS / "agch_wiki_demo.yaml").method_params()
    paper = load_config(CONFIGS / "agch_wiki.yaml").method_params()
    differs = {k for k in type(paper).model_fields if getattr(demo, k) != getattr(paper, k)}
    # the budget (widths, epochs) and what the validation split chose (gamma, the feature-mode pair; lambda stayed 5)
    assert differs == {"hidden", "gcn_dims", "epochs", "gamma_v", "gamma_t", "lr_image", "standardize_inputs"}
    assert demo.epochs < paper.epochs and demo.hidden < paper.hidden
    # nothing else of the paper's objective changed: the faithful defaults in both
    assert demo.reduction == paper.reduction == "pairs" and not demo.renormalize_similarity
    assert demo.fusion_input == paper.fusion_input == "hidden"


@pytest.mark.slow
def test_trains_through_the_engine_on_wiki(tmp_path):
    from bitrieve.engine import train_run

    cfg = load_config(CONFIGS / "agch_wiki.yaml",
                      ["params.epochs=1", "params.hidden=64", "params.gcn_dims=[32]", "tracking=none"])
    res = train_run(cfg, tmp_path / "run", progress=False)
    assert res["method"] == "agch" and res["bits"] == 32
    assert 0.0 < res["metrics"]["i2t"]["map@all"] <= 1.0 and 0.0 < res["metrics"]["t2i"]["map@all"] <= 1.0
    assert "s_label_corr" in res["diagnostics"]["method"]
