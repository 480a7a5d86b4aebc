"""The torch device a command or run uses, and its mixed-precision context: the one reading of ``device`` /
``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) for the engine and the feature extractors alike.

At the bottom of the package (torch is imported when a function is called), so that the networks' layer and the
engine share it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable

from bitrieve.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(spec: str, option: str = "key 'device'", error: type[Exception] = ConfigError) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu'; 'cuda' / 'cuda:N' (an ``error`` naming ``option`` when CUDA or
    that device is absent, or the spec is none of these)."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise error(f"{option}: expected auto, cpu, cuda or cuda:N, got '{spec}'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"{option}: '{spec}' requested but CUDA is not available (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise error(f"{option}: '{spec}' but only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise error(f"{option}: expected auto, cpu, cuda or cuda:N, got '{spec}'")
    return dev


def autocast_factory(device: torch.device, amp: str) -> Callable[[], Any]:
    """A zero-argument factory of the autocast context for ``--amp bf16|fp16|off``."""
    import torch

    if amp == "off":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
