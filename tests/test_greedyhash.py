"""GreedyHash golden tests: straight-through gradient, every parameter trains, bits set the width, it learns."""

import numpy as np
import pytest
import torch

from bitrieve.methods.base import DataInfo
from bitrieve.methods.greedyhash import GreedyHash
from bitrieve.parts.hashing import sign_ste


def _info(shape=(16,), classes=4, n=64):
    dim = int(np.prod(shape))
    return DataInfo({"image": dim}, {"image": shape}, num_labels=classes, num_train=n)


def _method(bits=12, **params):
    params.setdefault("backbone", "identity")
    return GreedyHash(GreedyHash.Params(**params), bits, _info())


def _batch(n=8, dim=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return {"image": torch.randn(n, dim, generator=g), "label": torch.nn.functional.one_hot(y, classes).to(torch.uint8)}


def test_straight_through_gradient_is_identity():
    h = torch.tensor([[0.3, -0.2, 1.7], [-4.0, 0.0, 0.01]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0, -3.0], [0.5, -1.0, 4.0]])
    b = sign_ste(h)
    assert set(b.unique().tolist()) <= {-1.0, 1.0}
    (w * b).sum().backward()
    torch.testing.assert_close(h.grad, w)


def test_classification_gradient_reaches_the_hash_layer_through_sign():
    m = _method(alpha=0.0)  # only the cross-entropy: its gradient must cross the sign
    m.loss(_batch())["loss"].backward()
    assert m.hash_fc.weight.grad is not None and m.hash_fc.weight.grad.abs().sum() > 0


def test_every_trainable_parameter_receives_a_gradient():
    m = _method()
    m.loss(_batch())["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


def test_classifier_is_bias_free_and_bits_change_the_width():
    for bits in (12, 48):
        m = _method(bits=bits)
        assert m.encode("image", torch.randn(3, 16)).shape == (3, bits)
        assert m.classifier.bias is None and m.classifier.in_features == bits


def test_paper_defaults_and_schedule():
    m = _method()
    (stage,) = m.stages()
    assert (m.params.alpha, m.params.lr, m.params.batch_size, stage.epochs) == (0.1, 1e-3, 32, 50)
    assert stage.optimizer == "sgd" and stage.optimizer_kwargs == {"momentum": 0.9, "weight_decay": 5e-4}
    assert stage.schedule_milestones == (30,) and stage.schedule_gamma == 0.1


def test_multilabel_rows_are_refused():
    b = _batch()
    b["label"][0, :] = 1
    with pytest.raises(ValueError, match="single-label"):
        _method().loss(b)


def test_learns_class_codes_on_separable_features():
    torch.manual_seed(0)
    classes, dim, n = 4, 16, 128
    centres = torch.randn(classes, dim) * 3
    y = torch.arange(n) % classes
    x = centres[y] + torch.randn(n, dim)
    m = _method(bits=16)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    batch = {"image": x, "label": torch.nn.functional.one_hot(y, classes)}
    for _ in range(40):
        opt.zero_grad()
        m.loss(batch)["loss"].backward()
        opt.step()
    b = torch.sign(m.encode("image", x)).detach()
    ham = (16 - b @ b.T) / 2
    same = y[:, None] == y[None, :]
    assert ham[same].mean() < 0.25 * ham[~same].mean()


def test_alexnet_backbone_trains_end_to_end():
    pytest.importorskip("torchvision")
    info = DataInfo({"image": 3 * 32 * 32}, {"image": (3, 32, 32)}, num_labels=3, num_train=4)
    m = GreedyHash(GreedyHash.Params(backbone="alexnet", image_size=64), 12, info)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = m.loss({"image": x, "label": torch.tensor([[1, 0, 0], [0, 0, 1]])})
    out["loss"].backward()
    assert m.backbone.features[0].weight.grad.abs().sum() > 0
    assert m.encode("image", x).shape == (2, 12)
