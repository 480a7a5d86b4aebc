"""Backbones: Caffe within-channel LRN by hand, DSH CNN feature sizes, AlexNet weights loaded without executing code."""

import pytest
import torch

from bitrieve.parts.backbones import AlexNetFC7, DSHNet, WithinChannelLRN, build_backbone
from bitrieve.weights import load_state_dict_file


def test_within_channel_lrn_matches_the_caffe_formula():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 4) * 50
    out = WithinChannelLRN(3, alpha=5e-5, beta=0.75)(x)
    # pixel (1, 1) of channel 0: full 3x3 window; pixel (0, 0): zero padding counted (Caffe divides by 9)
    win = x[0, 0, 0:3, 0:3].pow(2).sum()
    expect = x[0, 0, 1, 1] / (1 + 5e-5 / 9 * win) ** 0.75
    corner = x[0, 0, 0:2, 0:2].pow(2).sum()
    expect_corner = x[0, 0, 0, 0] / (1 + 5e-5 / 9 * corner) ** 0.75
    torch.testing.assert_close(out[0, 0, 1, 1], expect)
    torch.testing.assert_close(out[0, 0, 0, 0], expect_corner)


def test_dsh_cnn_pools_32_to_4_like_caffe():
    net = DSHNet(12)
    assert net.features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 4, 4)
    assert net.fc[1].in_features == 1024 and net.fc[1].out_features == 500


def test_identity_backbone_flattens_features():
    m, dim = build_backbone("identity", (4, 5))
    assert dim == 20 and m(torch.zeros(2, 4, 5)).shape == (2, 20)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg", (3,))
    with pytest.raises(ValueError, match="raw images"):
        build_backbone("dsh_cnn", (128,), bits=12)


def test_alexnet_loads_a_safetensors_state_dict(tmp_path):
    pytest.importorskip("torchvision")
    from safetensors.torch import save_file
    from torchvision.models import alexnet

    src = alexnet(weights=None)
    path = tmp_path / "alexnet.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    net = AlexNetFC7(path)
    torch.testing.assert_close(net.features[0].weight, src.features[0].weight)
    torch.testing.assert_close(net.classifier[4].weight, src.classifier[4].weight)  # fc7
    assert len(net.classifier) == 6  # fc8 dropped
    assert set(load_state_dict_file(path)) == set(src.state_dict())
    with pytest.raises(FileNotFoundError, match="not found"):
        AlexNetFC7(tmp_path / "missing.pth")


def test_alexnet_refuses_a_foreign_state_dict(tmp_path):
    pytest.importorskip("torchvision")
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not a torchvision AlexNet"):
        AlexNetFC7(path)
