"""VSE++ golden tests: both encoders train, embeddings are unit-norm, binary width follows bits, paper settings."""

import pytest
import torch

from bitrieve.methods.base import DataInfo
from bitrieve.methods.vsepp import VSEPP


def _info(text_dim=10, vocab=None):
    card = {"vocab_size": vocab} if vocab else {}
    return DataInfo({"image": 32, "text": text_dim}, {"image": (32,), "text": (text_dim,)}, num_labels=5,
                    num_train=50, card=card)


def _token_batch(n=5, vocab=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab, (n, 7), generator=g)
    for i in range(n):
        tokens[i, 3 + i % 4:] = 0  # variable lengths, padding id 0
    return {"image": torch.randn(n, 32, generator=g), "text": tokens}


def _grads_missing(m):
    return [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]


def test_gru_text_every_parameter_receives_a_gradient():
    m = VSEPP(VSEPP.Params(embed_dim=16, word_dim=8), 32, _info(text_dim=7, vocab=30))
    assert m.text_kind == "gru"
    batch = _token_batch()
    m.loss(batch)["loss"].backward()
    missing = _grads_missing(m)
    # embedding rows of words absent from the batch legitimately get no gradient; the matrix as a whole must
    assert not missing


def test_feature_text_every_parameter_receives_a_gradient():
    m = VSEPP(VSEPP.Params(embed_dim=16), 32, _info())
    assert m.text_kind == "features"
    g = torch.Generator().manual_seed(1)
    out = m.loss({"image": torch.randn(6, 32, generator=g), "text": torch.randn(6, 10, generator=g)})
    out["loss"].backward()
    assert out["loss"] > 0 and not _grads_missing(m)


def test_embeddings_are_unit_norm_and_real_valued_by_default():
    m = VSEPP(VSEPP.Params(), 16, _info())
    assert m.output == "embedding" and m.width == 1024
    e = m.encode("image", torch.randn(4, 32))
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))


def test_binary_option_bits_change_the_width():
    from bitrieve.codes import sign

    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(4))
    for bits in (16, 64):
        m = VSEPP(VSEPP.Params(binary=True), bits, _info())
        assert m.hamming_metrics  # the engine adds Hamming metrics on the sign codes
        # the official image encoder re-typed: Linear then L2-normalise, now bits wide
        h = x @ m.img_fc.weight.detach().T + m.img_fc.bias.detach()
        e = m.encode("image", x).detach()
        torch.testing.assert_close(e, h / h.norm(dim=1, keepdim=True))
        assert e.shape == (3, bits) and m.encode("text", torch.randn(3, 10)).shape == (3, bits)
        assert (sign(e) == torch.where(h > 0, 1, -1).numpy()).all()  # codes: the signs of the linear map
    real = VSEPP(VSEPP.Params(), 16, _info())
    assert real.encode("image", x).shape == (3, 1024) and not real.hamming_metrics  # paper: 1,024-d, bits unused


def test_paper_settings():
    m = VSEPP(VSEPP.Params(), 16, _info())
    (stage,) = m.stages()
    assert stage.optimizer == "adam" and stage.grad_clip == 2.0 and stage.batch_size == 128
    assert stage.epochs == 30 and stage.schedule_milestones == (15,) and stage.schedule_gamma == 0.1
    assert (m.params.margin, m.params.max_violation, m.params.lr) == (0.2, True, 2e-4)


def test_gru_requires_a_vocabulary_size():
    with pytest.raises(ValueError, match="vocab_size"):
        VSEPP(VSEPP.Params(text_encoder="gru"), 16, _info())


def test_single_pair_batch_contributes_zero():
    m = VSEPP(VSEPP.Params(embed_dim=8), 16, _info())
    out = m.loss({"image": torch.randn(1, 32), "text": torch.randn(1, 10)})
    assert out["loss"].item() == 0.0
    out["loss"].backward()


def test_training_aligns_pairs():
    torch.manual_seed(0)
    n = 40
    latent = torch.randn(n, 6)
    batch = {"image": latent @ torch.randn(6, 32), "text": latent @ torch.randn(6, 10)}
    m = VSEPP(VSEPP.Params(embed_dim=32), 16, _info())
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = m.loss(batch)["loss"]
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = m.encode("image", batch["image"]) @ m.encode("text", batch["text"]).T
    r1 = (s.argmax(1) == torch.arange(n)).float().mean().item()
    assert loss.item() < 0.5 * first and r1 > 0.5


def test_vocab_size_from_a_canonical_store_card():
    card = {"features": {"text": {"kind": "tokens", "pad_id": 0, "vocab_size": 821}}}
    info = DataInfo({"image": 32, "text": 44}, {"image": (32,), "text": (44,)}, 80, 400, card=card)
    m = VSEPP(VSEPP.Params(embed_dim=8, word_dim=4), 16, info)
    assert m.text_kind == "gru" and m.txt.embed.num_embeddings == 821
    card["features"]["text"]["pad_id"] = 5
    with pytest.raises(ValueError, match="pad_id"):
        VSEPP(VSEPP.Params(embed_dim=8, word_dim=4), 16, info)


def test_binary_option_through_the_engine_adds_hamming_recall_and_map(tmp_path):
    """``binary: true`` on Wiki pairs: cosine Recall@K (headline) plus Recall@K by Hamming ranking of the sign codes
    (``hamming_r@K``) and label mAP on the sign codes, all from one engine run; the Hamming recall is recomputed
    here from the stored checkpoint's codes with a brute-force reference."""
    import numpy as np

    from bitrieve.config import parse_config
    from bitrieve.data import load_data
    from bitrieve.engine import load_run, train_run

    cfg = parse_config({"method": "vsepp", "data": "wiki", "bits": 32, "seed": 0, "tracking": "none",
                        "params": {"text_encoder": "features", "binary": True, "embed_dim": 64, "epochs": 1,
                                   "max_violation": False},
                        "eval": {"ks": [50], "map_all": True}})
    res = train_run(cfg, tmp_path, progress=False)
    i2t = res["metrics"]["i2t"]
    assert {"r@1", "r@5", "r@10", "rsum", "hamming_r@1", "hamming_r@5", "hamming_r@10", "map@all", "map@50"} <= set(i2t)
    _, method = load_run(tmp_path, device="cpu")
    q = load_data("wiki")["query"]
    with torch.no_grad():
        bi = torch.where(method.encode("image", torch.as_tensor(q.inputs["image"]).float()) >= 0, 1, -1)
        bt = torch.where(method.encode("text", torch.as_tensor(q.inputs["text"]).float()) >= 0, 1, -1)
    assert bi.shape[1] == 32
    dist = (32 - bi @ bt.T) // 2  # Hamming distance of ±1 codes
    # rank of the true pair with ties in database order: items strictly closer + earlier items at equal distance
    n = dist.shape[0]
    own = dist.diagonal().unsqueeze(1)
    earlier = torch.arange(n).unsqueeze(0) < torch.arange(n).unsqueeze(1)
    rank = ((dist < own) | ((dist == own) & earlier)).sum(1).numpy()
    for k in (1, 5, 10):
        assert i2t[f"hamming_r@{k}"] == pytest.approx(100.0 * np.mean(rank < k))
