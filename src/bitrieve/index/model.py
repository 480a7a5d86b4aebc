"""The trained model behind an index: load it from a run directory and fingerprint it.

The fingerprint (``model_hash``) is the sha256 of the method name, the code length and every tensor of the model's
state dict (names, dtypes, shapes, bytes) — what determines the codes, and nothing else (optimizer state, RNG
state and logs may change without making old codes invalid). Encoding is ``bitrieve.codes.encode.encode_codes``, the
loop the engine uses too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bitrieve.errors import BinaryIndexError


def load_run_model(run_dir: str | Path, device: str = "cpu", loader=None):
    """``(cfg, method)`` of a trained run, weights loaded, in eval mode on ``device`` (``bitrieve.engine.load_run``);
    ``loader``: ``data spec -> CrossModalData`` (the command's cache, so the store is opened once per command)."""
    from bitrieve.engine import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    cfg, method = load_run(run_dir, device=device, loader=loader)
    if getattr(method, "output", "hash") != "hash":
        raise BinaryIndexError(f"{run_dir}: method '{cfg.method}' outputs real-valued embeddings, not hash codes; "
                               "a binary index does not apply")
    return cfg, method


def model_hash(method) -> str:
    """sha256 fingerprint of a method's weights (see the module docstring)."""
    from bitrieve.checkpoint import hash_tensors

    h = hashlib.sha256()
    h.update(json.dumps({"method": getattr(method, "name", type(method).__name__),
                         "bits": int(method.bits)}, sort_keys=True).encode())
    hash_tensors(h, sorted(method.state_dict().items()))
    return h.hexdigest()
