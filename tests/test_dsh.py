"""DSH golden tests: small CNN shapes, every parameter trains, bits set the width, paper constants, mean image."""

import numpy as np
import pytest
import torch

from bitrieve.data.types import Split
from bitrieve.methods.base import DataInfo
from bitrieve.methods.dsh import DSH


def _pixels_info(shape=(3, 32, 32), n=1000):
    return DataInfo({"image": int(np.prod(shape))}, {"image": shape}, num_labels=10, num_train=n)


def _batch(n=6, shape=(3, 32, 32), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 3
    return {"image": x, "label": torch.nn.functional.one_hot(y, classes).to(torch.uint8)}


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_small_cnn_every_parameter_receives_a_gradient(shape):
    m = DSH(DSH.Params(), 12, _pixels_info(shape))
    m.loss(_batch(shape=shape))["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


@pytest.mark.parametrize("backbone", ["dsh_cnn", "identity"])
def test_bits_change_the_output_width(backbone):
    shape = (3, 32, 32) if backbone == "dsh_cnn" else (20,)
    info = DataInfo({"image": int(np.prod(shape))}, {"image": shape}, num_labels=10, num_train=100)
    for bits in (12, 48):
        m = DSH(DSH.Params(backbone=backbone), bits, info)
        x = torch.randint(0, 256, (2, *shape), dtype=torch.uint8) if len(shape) == 3 else torch.randn(2, 20)
        assert m.encode("image", x).shape == (2, bits)
        assert m.margin == 2 * bits


def test_identity_backbone_gradients():
    info = DataInfo({"image": 20}, {"image": (20,)}, num_labels=10, num_train=100)
    m = DSH(DSH.Params(backbone="identity"), 16, info)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    m.loss({"image": torch.randn(6, 20), "label": torch.nn.functional.one_hot(y, 10)})["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_paper_constants_and_iteration_schedule():
    m = DSH(DSH.Params(), 12, _pixels_info(n=50_000))
    (stage,) = m.stages()
    assert (m.params.alpha, m.params.lr, stage.batch_size) == (0.01, 1e-3, 200)
    assert stage.optimizer_kwargs == {"momentum": 0.9, "weight_decay": 0.004}
    assert stage.schedule_unit == "iter" and stage.schedule_milestones == (60_000, 65_000)
    assert stage.epochs == 280  # 70,000 iterations x 200 / 50,000 images
    assert DSH(DSH.Params(epochs=3), 12, _pixels_info()).stages()[0].epochs == 3


def _dsh_loss_by_pairs(b, labels, margin, alpha):
    """The DSH objective re-typed pair by pair (paper Sec. 3, Caffe HashingLossLayer normalisation n(n - 1)):
    sum_{i<j} 1/2 [s ||b_i - b_j||^2 + (1 - s) max(m - ||b_i - b_j||^2, 0)] / (n(n - 1))
    + alpha * sum_i sum_k | |b_ik| - 1 | / n."""
    b, labels = b.tolist(), labels.tolist()
    n = len(b)
    pairs = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            d2 = sum((x - y) ** 2 for x, y in zip(b[i], b[j]))
            similar = any(u and v for u, v in zip(labels[i], labels[j]))
            pairs += 0.5 * (d2 if similar else max(margin - d2, 0.0))
    reg = sum(abs(abs(x) - 1.0) for row in b for x in row) / n
    return pairs / (n * (n - 1)) + alpha * reg


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.7])
def test_loss_is_the_papers_pair_loss_plus_the_weighted_regularizer(alpha):
    info = DataInfo({"image": 20}, {"image": (20,)}, num_labels=10, num_train=100)
    torch.manual_seed(0)
    m = DSH(DSH.Params(backbone="identity", alpha=alpha, margin=0.3), 4, info)  # identity: no random mirror
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 20, generator=g)
    y = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 1, 2, 0]), 10)
    y[5, 1] = 1  # a multi-label row: similar to rows 0, 1 (label 0) and 2, 3 (label 1)
    out = m.loss({"image": x, "label": y})
    with torch.no_grad():
        b = m.encode("image", x)
    d2 = torch.cdist(b, b)[torch.triu_indices(6, 6, 1).unbind()] ** 2
    assert (d2 < 0.3).any() and (d2 > 0.3).any()  # the hinge is active for some pairs and not for others
    assert out["loss"].item() == pytest.approx(_dsh_loss_by_pairs(b, y, 0.3, alpha), rel=1e-5)


def test_prepare_stores_the_training_mean_image():
    x = np.stack([np.full((3, 32, 32), v, np.uint8) for v in (10, 20, 60)])
    split = Split({"image": x}, np.eye(3, 10, dtype=np.uint8), np.arange(3))
    m = DSH(DSH.Params(), 12, _pixels_info(n=3))
    m.prepare(split)
    assert torch.allclose(m.pixel_mean, torch.full((3, 32, 32), 30.0))
    assert "pixel_mean" in m.state_dict()  # saved with the checkpoint


def test_single_modal():
    m = DSH(DSH.Params(), 12, _pixels_info())
    assert m.modalities == ("image",) and m.supervised
    with pytest.raises(ValueError, match="single-modal"):
        m.encode("text", torch.zeros(1, 3))
