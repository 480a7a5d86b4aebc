"""The trained model behind an index: load it from a run directory, fingerprint it, encode in bounded chunks.

The fingerprint (``model_hash``) is the sha256 of the method name, the code length and every tensor of the model's
state dict (names, dtypes, shapes, bytes) — what determines the codes, and nothing else (optimizer state, RNG
state and logs may change without making old codes invalid).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bitrieve.codes import WORD, Codes, n_words, pack_bits, sign_bits
from bitrieve.errors import BinaryIndexError


def load_run_model(run_dir: str | Path, device: str = "cpu"):
    """``(cfg, method)`` of a trained run, weights loaded, in eval mode on ``device`` (``bitrieve.engine.load_run``)."""
    from bitrieve.engine import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    cfg, method = load_run(run_dir, device=device)
    if getattr(method, "output", "hash") != "hash":
        raise BinaryIndexError(f"{run_dir}: method '{cfg.method}' outputs real-valued embeddings, not hash codes; "
                               "a binary index does not apply")
    return cfg, method


def model_hash(method) -> str:
    """sha256 fingerprint of a method's weights (see the module docstring)."""
    from bitrieve.engine.checkpoint import hash_tensors

    h = hashlib.sha256()
    h.update(json.dumps({"method": getattr(method, "name", type(method).__name__),
                         "bits": int(method.bits)}, sort_keys=True).encode())
    hash_tensors(h, sorted(method.state_dict().items()))
    return h.hexdigest()


def encode_packed(method, inputs: np.ndarray, modality: str, chunk: int = 8192, device: Any = "cpu",
                  progress: bool = True) -> Codes:
    """Encode ``inputs`` chunk by chunk, take the sign (``bitrieve.codes.sign_bits``: >= 0 -> 1, as the engine
    does) and pack each chunk at once.

    Peak memory beyond the packed output: one chunk of inputs and its ``chunk × bits`` float32 outputs.
    """
    import torch

    bits = int(method.bits)
    n = int(inputs.shape[0])
    out = np.empty((n, n_words(bits)), WORD)
    was_training = method.training
    method.eval()
    starts = range(0, n, chunk)
    if progress:
        from bitrieve.console import progress as progress_bar

        starts = progress_bar(starts, desc=f"encode {modality}", unit="chunk", total=len(starts))
    try:
        with torch.no_grad():
            for s in starts:
                x = torch.from_numpy(np.ascontiguousarray(inputs[s:s + chunk]))
                if x.dtype == torch.float64:
                    x = x.float()
                h = method.encode(modality, x.to(device))
                if h.ndim != 2 or h.shape != (x.shape[0], bits):
                    raise BinaryIndexError(f"{type(method).__name__}.encode('{modality}') returned shape "
                                           f"{tuple(h.shape)}, expected ({x.shape[0]}, {bits})")
                out[s:s + x.shape[0]] = pack_bits(sign_bits(h))
    finally:
        method.train(was_training)
    return Codes(out, bits)
