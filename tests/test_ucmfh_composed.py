"""The composed example agch_fusion_balanced: golden tests and that its loss is the sum of its named parts."""

import torch

from bitrieve.losses.contrastive import balanced_contrastive
from bitrieve.losses.reconstruction import similarity_reconstruction
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo
from bitrieve.parts.similarity import aggregated_similarity

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


def test_loss_is_balanced_contrastive_plus_weighted_aggregated_reconstruction():
    m = _build(sim_weight=7.0).eval()  # eval: dropout off, so the parts can be recomputed exactly
    b = _batch()
    out = m.stages()[0].loss(b)
    ev, et = m.embed(b["image"], b["text"])
    hv, ht = m.heads["image"](ev), m.heads["text"](et)
    s = aggregated_similarity(b["image"], b["text"], 1.0, 0.8, 4.0)
    rec = similarity_reconstruction(s, hv) + similarity_reconstruction(s, ht) + similarity_reconstruction(s, hv, ht)
    ref = balanced_contrastive(ev, et) + 0.5 * balanced_contrastive(hv, ht) + 7.0 * rec
    assert torch.allclose(out["loss"], ref, rtol=1e-5)
    assert torch.allclose(out["reconstruction"], rec, rtol=1e-5)


def test_fusion_only_stage_optimises_the_embedding_term_alone():
    """pretrain_epochs > 0 adds UCMFH's fusion-only stage: it must optimise c(e_v, e_t) and nothing else (the hash
    and structure terms belong to the hash stage); the heads receive no gradient from it."""
    m = _build(pretrain_epochs=2).eval()
    fusion, hash_stage = m.stages()
    b = _batch()
    out = fusion.loss(b)
    assert set(out) == {"loss", "contrastive_embedding"}
    ev, et = m.embed(b["image"], b["text"])
    assert torch.allclose(out["loss"], balanced_contrastive(ev, et), rtol=1e-5)
    out["loss"].backward()
    assert all(p.grad is None for p in m.heads.parameters())
    assert {"contrastive_hash", "reconstruction"} <= set(hash_stage.loss(b))
