"""The method families composed from parts/ (two_tower, standardize, fusion_hashing, one AlexNet-fc7 builder).

Moving the family bodies into parts/ must not change a checkpoint: every state_dict key and shape of a small config
is compared with a list typed from the code before the move, and each stored run's checkpoint header with the model
the current code builds from the run's config.yaml (skipped where the checkpoint is absent: checkpoints are not in
git; BITRIEVE_RESULTS_DIR points at a results/ tree that has them, default the repository's results/).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo
from bitrieve.parts.standardize import fit_standardization, register_standardization, standardize

INFO = DataInfo({"image": 6, "text": 5}, {"image": (6,), "text": (5,)}, 3, 40)
FUSION_SMALL = dict(modality_dim=8, nhead=2, layers=1, dim_feedforward=16, head_hidden=12)


def _shapes(name: str, **params) -> dict[str, tuple[int, ...]]:
    cls = get_method(name)
    return {k: tuple(v.shape) for k, v in cls(cls.Params(**params), 4, INFO).state_dict().items()}


# --- state_dict keys of one small config (typed from the code before the move) ------------------------------------
TWO_TOWER_KEYS = {
    "image_mean": (6,), "image_std": (6,), "text_mean": (5,), "text_std": (5,), "steps_done": (),
    "encoders.image.body.0.weight": (8, 6), "encoders.image.body.0.bias": (8,),
    "encoders.image.hash.fc.weight": (4, 8), "encoders.image.hash.fc.bias": (4,),
    "encoders.text.body.0.weight": (8, 5), "encoders.text.body.0.bias": (8,),
    "encoders.text.hash.fc.weight": (4, 8), "encoders.text.hash.fc.bias": (4,),
}
AGCH_KEYS = {
    "image_mean": (6,), "image_std": (6,), "text_mean": (0,), "text_std": (0,),
    "image_encoder.body.0.weight": (8, 6), "image_encoder.body.0.bias": (8,),
    "image_encoder.hash.fc.weight": (4, 8), "image_encoder.hash.fc.bias": (4,),
    "text_encoder.body.0.weight": (8, 5), "text_encoder.body.0.bias": (8,),
    "text_encoder.hash.fc.weight": (4, 8), "text_encoder.hash.fc.bias": (4,),
    "fusion.fc.weight": (4, 16), "fusion.fc.bias": (4,),
    "gcn_image.convs.0.linear.weight": (7, 8), "gcn_image.convs.0.linear.bias": (7,),
    "gcn_image.fc.weight": (4, 7), "gcn_image.fc.bias": (4,),
    "gcn_text.convs.0.linear.weight": (7, 8), "gcn_text.convs.0.linear.bias": (7,),
    "gcn_text.fc.weight": (4, 7), "gcn_text.fc.bias": (4,),
}


def _encoder_layer(prefix: str, d: int, ff: int) -> dict[str, tuple[int, ...]]:
    """torch.nn.TransformerEncoderLayer's parameter names and shapes (width d, feed-forward ff)."""
    return {f"{prefix}.self_attn.in_proj_weight": (3 * d, d), f"{prefix}.self_attn.in_proj_bias": (3 * d,),
            f"{prefix}.self_attn.out_proj.weight": (d, d), f"{prefix}.self_attn.out_proj.bias": (d,),
            f"{prefix}.linear1.weight": (ff, d), f"{prefix}.linear1.bias": (ff,),
            f"{prefix}.linear2.weight": (d, ff), f"{prefix}.linear2.bias": (d,),
            f"{prefix}.norm1.weight": (d,), f"{prefix}.norm1.bias": (d,),
            f"{prefix}.norm2.weight": (d,), f"{prefix}.norm2.bias": (d,)}


FUSION_COMMON = {
    "fill_image": (6,), "fill_text": (5,),
    "project.image.weight": (8, 6), "project.image.bias": (8,), "project.text.weight": (8, 5), "project.text.bias": (8,),
    **{f"heads.{m}.{k}": s for m in ("image", "text") for k, s in
       (("fc1.weight", (12, 8)), ("fc1.bias", (12,)), ("fc2.weight", (4, 12)), ("fc2.bias", (4,)))},
}
UCMFH_KEYS = {**FUSION_COMMON, **_encoder_layer("fusion.transformer.encoder.layers.0", 16, 16)}  # token = 2 x 8
VARIANT_KEYS = {
    **FUSION_COMMON,
    **{k: s for m in ("image", "text") for k, s in {**_encoder_layer(f"transformers.{m}.encoder.layers.0", 8, 16),
                                                     f"transformers.{m}.norm.weight": (8,),
                                                     f"transformers.{m}.norm.bias": (8,)}.items()},
    **{f"cross.attn_{m}.{k}": s for m in ("image", "text") for k, s in
       (("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)), ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,)))},
    **{f"cross.norm_{m}.{k}": (8,) for m in ("image", "text") for k in ("weight", "bias")},
}


@pytest.mark.parametrize("name,params,expected", [
    ("djsrh", dict(hidden=8, input_norm="standardize"), TWO_TOWER_KEYS),
    ("jdsh", dict(hidden=8), TWO_TOWER_KEYS),
    ("dgcpn", dict(hidden=8), TWO_TOWER_KEYS),
    ("ucmfh", FUSION_SMALL, UCMFH_KEYS),
    ("agch_fusion_balanced", FUSION_SMALL, UCMFH_KEYS),
    ("ucmfh_variant", FUSION_SMALL, VARIANT_KEYS),
    ("agch", dict(hidden=8, gcn_dims=[7], standardize_inputs="image"), AGCH_KEYS),
])
def test_state_dict_keys_are_those_before_the_move(name, params, expected):
    assert _shapes(name, **params) == expected


def test_agch_alexnet_mode_keeps_its_fc67_keys():
    pytest.importorskip("torchvision")
    info = DataInfo({"image": 3 * 64 * 64, "text": 5}, {"image": (3, 64, 64), "text": (5,)}, 3, 40)
    cls = get_method("agch")
    keys = set(cls(cls.Params(input_mode="alexnet", hidden=8, gcn_dims=[7]), 4, info).state_dict())
    for branch in ("image_encoder", "image_reference"):  # conv1 .. fc7 of both AlexNets, fc8 dropped
        assert {f"{branch}.features.0.weight", f"{branch}.fc67.1.weight", f"{branch}.fc67.4.weight"} <= keys
        assert f"{branch}.fc67.6.weight" not in keys
    assert {"image_mean", "image_std"} <= keys and "image_encoder.hash.fc.weight" in keys


# --- stored checkpoints -------------------------------------------------------------------------------------------
RESULTS = Path(os.environ.get("BITRIEVE_RESULTS_DIR", Path(__file__).resolve().parents[1] / "results"))
STORED = ["djsrh-wiki/b16-s0", "jdsh-wiki/b128-s2", "dgcpn-wiki/b16-s0", "ucmfh-wiki/b32-s1",
          "ucmfh_variant-wiki/b16-s0", "agch_fusion_balanced-wiki/b16-s0"]


@pytest.mark.parametrize("run", STORED)
def test_stored_checkpoint_matches_the_model_built_now(run):
    ckpt = RESULTS / run / "checkpoint.safetensors"
    if not ckpt.is_file():
        pytest.skip(f"{ckpt} absent (checkpoints are not in git)")
    from safetensors import safe_open

    from bitrieve.config import load_config
    from bitrieve.data import load_data
    from bitrieve.engine.loading import build_method

    with safe_open(str(ckpt), "pt") as f:  # the header only: names and shapes
        stored = {k[len("model/"):]: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("model/")}
    cfg = load_config(RESULTS / run / "config.yaml")
    built = {k: tuple(v.shape) for k, v in build_method(cfg, load_data(cfg.data)).state_dict().items()}
    assert built == stored


# --- input standardisation (one implementation for AGCH and the DJSRH family) -------------------------------------
def test_standardisation_is_a_bessel_corrected_z_score_with_a_floor():
    x = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])  # column 2 constant
    owner = torch.nn.Module()
    register_standardization(owner, {"image": 2, "text": 0})
    fit_standardization(owner, {"image": x}, ["image"])
    sd = math.sqrt(((1.5 ** 2) * 2 + (0.5 ** 2) * 2) / 3)  # ddof = 1: 1.29099...
    assert owner.image_mean.tolist() == [2.5, 5.0]
    assert owner.image_std.tolist() == pytest.approx([sd, 1e-6], rel=1e-6)
    z = standardize(owner, "image", x)
    assert z[:, 0].tolist() == pytest.approx([-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd], rel=1e-6)
    assert z[:, 1].tolist() == [0.0] * 4  # a constant dimension maps to 0
    t = torch.rand(3, 5)
    assert torch.equal(standardize(owner, "text", t), t)  # width-0 buffers: not standardised
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        standardize(owner, "audio", t)


def test_agch_accumulates_in_float64_and_the_djsrh_family_in_float32():
    """Each method keeps its numbers: on values where float32 sums round, AGCH's statistics equal the float64 ones
    (cast to float32) and DJSRH's the float32 ones (not in general equal)."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    image = (1e4 + torch.rand(4000, 6, generator=g, dtype=torch.float64)).numpy()
    text = torch.rand(4000, 5, generator=g, dtype=torch.float64).numpy()
    train = SimpleNamespace(inputs={"image": image, "text": text}, __len__=lambda: 4000)
    info = DataInfo({"image": 6, "text": 5}, {"image": (6,), "text": (5,)}, 3, 4000)
    agch = get_method("agch")(get_method("agch").Params(hidden=8, gcn_dims=[7], standardize_inputs="both"), 4, info)
    agch.prepare(train)
    djsrh = get_method("djsrh")(get_method("djsrh").Params(hidden=8, input_norm="standardize"), 4, info)
    djsrh.prepare(train)
    x64 = torch.as_tensor(image)
    x32 = x64.float()
    assert torch.equal(agch.image_mean, torch.as_tensor(image.mean(0)).float())
    assert torch.equal(agch.image_std, torch.as_tensor(image.std(0, ddof=1)).float())
    assert torch.equal(djsrh.image_mean, x32.mean(0)) and torch.equal(djsrh.image_std, x32.std(0))
    assert torch.allclose(agch.image_mean, djsrh.image_mean, rtol=1e-6)  # the same statistic, two precisions


# --- the family parts against re-typed formulas -------------------------------------------------------------------
def test_two_tower_codes_are_tanh_of_alpha_times_the_mlp():
    from bitrieve.parts.two_tower import TwoTowerEncoders, sqrt_epoch_alpha

    torch.manual_seed(0)
    towers = TwoTowerEncoders({"image": 6, "text": 5}, hidden=8, bits=4, dropout=0.5).eval()
    x = torch.randn(3, 5)
    enc = towers["text"]
    w1, b1, w2, b2 = enc.body[0].weight, enc.body[0].bias, enc.hash.fc.weight, enc.hash.fc.bias
    expected = torch.tanh(2.0 * (torch.relu(x @ w1.T + b1) @ w2.T + b2))
    torch.testing.assert_close(towers.codes("text", x, alpha=2.0), expected)
    assert set(towers.param_groups(0.1, 0.2)) == {"image", "text"}
    assert towers.param_groups(0.1, 0.2)["text"]["lr"] == 0.2
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        towers.codes("audio", x)
    # epoch = floor(steps / steps per epoch): 0 -> 1, 9 -> 1, 10 -> sqrt 2, 25 -> sqrt 3
    assert [sqrt_epoch_alpha(s, 10) for s in (0, 9, 10, 25)] == [1.0, 1.0, math.sqrt(2.0), math.sqrt(3.0)]


def test_unimodal_fill_is_the_training_mean_of_the_other_modality():
    from bitrieve.parts.fusion_hashing import fit_fill, register_fill, with_fill

    owner = torch.nn.Module()
    register_fill(owner, {"image": 2, "text": 3})
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    text = torch.tensor([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [9.0, 9.0, 9.0]])
    fit_fill(owner, {"image": image.numpy(), "text": text.numpy()}, rows=2)  # the rows trained on only
    assert owner.fill_image.tolist() == [2.0, 3.0] and owner.fill_text.tolist() == [1.0, 2.0, 3.0]
    q = torch.ones(4, 2)
    img, txt = with_fill(owner, "image", q)
    assert img is q and txt.tolist() == [[1.0, 2.0, 3.0]] * 4
    img, txt = with_fill(owner, "text", torch.zeros(1, 3))
    assert img.tolist() == [[2.0, 3.0]] and txt.tolist() == [[0.0, 0.0, 0.0]]
