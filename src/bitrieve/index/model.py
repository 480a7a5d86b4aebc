"""The trained model behind an index: load it from a run directory and fingerprint it.

The fingerprint (``model_hash``) is the sha256 of the method name, the code length and every tensor of the model's
state dict (names, dtypes, shapes, bytes) — what determines the codes, and nothing else (optimizer state, RNG
state and logs may change without making old codes invalid). ``run_fingerprint`` identifies the files a model is
made from, without loading it (``search --ids`` with the query codes an index stores). Encoding is
``bitrieve.codes.encode.encode_codes``, the loop the engine uses too.
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


def run_fingerprint(run_dir: str | Path) -> dict[str, str] | None:
    """What the run's model is made from, read without torch: the sha256 of ``config.yaml`` and the checksum that
    ``checkpoint.safetensors`` records over its tensors and state (its header's ``sha256``, bitrieve/checkpoint.py;
    hashing the whole file instead costs ~0.15-0.45 s for a 169 MB NUS-WIDE DJSRH checkpoint). None when a file is
    missing or records no checksum. Equal fingerprints mean the same model; a changed config or a later checkpoint
    (even one the model hash would accept) differs."""
    from bitrieve.data.wiki import sha256_file

    config, ckpt = Path(run_dir) / "config.yaml", Path(run_dir) / "checkpoint.safetensors"
    try:
        with open(ckpt, "rb") as f:
            n = int.from_bytes(f.read(8), "little")  # safetensors: 8-byte header length, then the JSON header
            meta = json.loads(f.read(n)).get("__metadata__") if 0 < n <= 1 << 26 else None
        digest = meta.get("sha256") if isinstance(meta, dict) else None
        if not isinstance(digest, str) or not config.is_file():
            return None
        return {config.name: sha256_file(config), ckpt.name: digest}
    except (OSError, ValueError, AttributeError):
        return None


def model_hash(method) -> str:
    """sha256 fingerprint of a method's weights (see the module docstring)."""
    from bitrieve.checkpoint import hash_tensors

    h = hashlib.sha256()
    h.update(json.dumps({"method": getattr(method, "name", type(method).__name__),
                         "bits": int(method.bits)}, sort_keys=True).encode())
    hash_tensors(h, sorted(method.state_dict().items()))
    return h.hexdigest()
