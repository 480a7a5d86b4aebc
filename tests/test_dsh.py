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


def test_loss_uses_the_regularizer_weight():
    m = DSH(DSH.Params(alpha=0.0), 12, _pixels_info())
    torch.manual_seed(0)
    out = m.loss(_batch())
    assert out["loss"].item() == pytest.approx((out["similar"] + out["dissimilar"]).item())


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
