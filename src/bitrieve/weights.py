"""Reading pretrained weights: the package's one loader of state dicts from files (backbones, AlexNet encoders,
feature extractors, a run's initialisation from another run's weights).

At the bottom of the package (it imports torch and safetensors only when called), so that every layer that builds a
network can read weights without importing another layer's network code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bitrieve.errors import WeightsError

if TYPE_CHECKING:
    import torch


def load_state_dict_file(path: str | Path, what: str = "backbone weights") -> dict[str, torch.Tensor]:
    """Read a state dict without executing code: ``.safetensors``, or ``torch.load(weights_only=True)`` for
    ``.pth``/``.pt``. The package's one loader of pretrained weights (backbones, AlexNet encoders, extractors).

    A pickle that would run code (it names a function or class that is not a tensor type) is refused with a
    `WeightsError` saying so; a truncated or corrupt file is a `WeightsError` naming it. We never offer to load the
    file with the protection off."""
    import pickle
    import re

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({e}); expected {what}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message would suggest turning the protection off: not ours to say
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        culprit = f" (it names {named.group(1)})" if named else ""
        raise WeightsError(f"{path}: refused: loading this file would execute code{culprit}, and bitrieve never "
                           "runs code from a weights file. Use a plain state dict of tensors (torch.save("
                           "model.state_dict()) or a .safetensors file)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        if isinstance(e, PermissionError):
            raise
        first = (str(e).splitlines() or [""])[0][:160]
        raise WeightsError(f"{path}: not a readable torch weights file ({type(e).__name__}: {first}); expected "
                           f"{what} - the file is truncated, empty or corrupt") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state
