"""The composed example agch_fusion_balanced: golden tests and that its loss is the sum of its named parts."""

import math

import pytest
import torch

from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo

SMALL = dict(modality_dim=16, nhead=2, dim_feedforward=32, head_hidden=32, batch_size=8, max_rows=None)
INFO = DataInfo(feature_dims={"image": 12, "text": 6}, input_shapes={"image": (12,), "text": (6,)}, num_labels=3,
                num_train=40)


def _build(bits=16, **kw):
    cls = get_method("agch_fusion_balanced")
    torch.manual_seed(0)
    return cls(cls.Params(**{**SMALL, **kw}), bits, INFO)


def _batch(n=8):
    g = torch.Generator().manual_seed(3)
    return {"image": torch.randn(n, 12, generator=g), "text": torch.randn(n, 6, generator=g), "index": torch.arange(n)}


def test_every_parameter_gets_a_gradient_and_bits_set_width():
    m = _build().train()
    (stage,) = m.stages()
    stage.loss(_batch())["loss"].backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{n} got no gradient"
    for bits in (8, 24):
        assert _build(bits=bits).eval().encode("text", torch.randn(3, 6)).shape == (3, bits)


def _balanced_by_rows(a, b, tau=0.5):
    """The balanced contrastive loss re-typed row by row (HashNet weights w_pos = N, w_neg = N/(N-1) on a one-way
    cross-modal InfoNCE): mean_i -w_pos log(e^{s_ii} / (e^{s_ii} + w_neg sum_{j!=i} e^{s_ij})), s = cos / tau."""
    n = a.shape[0]
    w_pos, w_neg = n, n / (n - 1)
    total = 0.0
    for i in range(n):
        s = [float(torch.dot(a[i], b[j]) / (a[i].norm() * b[j].norm())) / tau for j in range(n)]
        neg = sum(math.exp(s[j]) for j in range(n) if j != i)
        total += -w_pos * math.log(math.exp(s[i]) / (math.exp(s[i]) + w_neg * neg))
    return total / n


def _agch_similarity_by_pairs(image, text, gv=1.0, gt=0.8, rho=4.0):
    """AGCH's S = 2 (C * D) - 1 re-typed per pair (TMM 2022, Eqs. 8-12): z_i = [gv v_i/|v_i|, gt t_i/|t_i|],
    C_ij = <z_i, z_j>, D_ij = exp(-|z_i - z_j| / rho)."""
    z = [torch.cat([gv * v / v.norm(), gt * t / t.norm()]) for v, t in zip(image, text)]
    return [[2 * float(torch.dot(zi, zj)) * math.exp(-float((zi - zj).norm()) / rho) - 1 for zj in z] for zi in z]


def _reconstruction_by_pairs(s, a, b):
    """mean over pairs (S_ij - cos(a_i, b_j))^2."""
    n = len(s)
    cos = [[float(torch.dot(a[i], b[j]) / (a[i].norm() * b[j].norm())) for j in range(n)] for i in range(n)]
    return sum((s[i][j] - cos[i][j]) ** 2 for i in range(n) for j in range(n)) / n ** 2


def test_loss_is_balanced_contrastive_plus_weighted_aggregated_reconstruction():
    m = _build(sim_weight=7.0).eval()  # eval: dropout off, so the parts can be recomputed exactly
    b = _batch()
    out = m.stages()[0].loss(b)
    with torch.no_grad():
        ev, et = m.embed(b["image"], b["text"])
        hv, ht = m.heads["image"](ev), m.heads["text"](et)
    s = _agch_similarity_by_pairs(b["image"], b["text"])
    rec = sum(_reconstruction_by_pairs(s, x, y) for x, y in ((hv, hv), (ht, ht), (hv, ht)))
    ref = _balanced_by_rows(ev, et) + 0.5 * _balanced_by_rows(hv, ht) + 7.0 * rec  # hash_weight 0.5 (UCMFH)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-5)
    assert out["reconstruction"].item() == pytest.approx(rec, rel=1e-5)
    assert out["contrastive_embedding"].item() == pytest.approx(_balanced_by_rows(ev, et), rel=1e-5)


def test_fusion_only_stage_optimises_the_embedding_term_alone():
    """pretrain_epochs > 0 adds UCMFH's fusion-only stage: it must optimise c(e_v, e_t) and nothing else (the hash
    and structure terms belong to the hash stage); the heads receive no gradient from it."""
    m = _build(pretrain_epochs=2).eval()
    fusion, hash_stage = m.stages()
    b = _batch()
    out = fusion.loss(b)
    assert set(out) == {"loss", "contrastive_embedding"}
    ev, et = m.embed(b["image"], b["text"])
    assert out["loss"].item() == pytest.approx(_balanced_by_rows(ev.detach(), et.detach()), rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is None for p in m.heads.parameters())
    assert {"contrastive_hash", "reconstruction"} <= set(hash_stage.loss(b))
