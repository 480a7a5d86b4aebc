"""Run checkpoints (safetensors; no pickle anywhere).

At the io level, below every network layer: the engine writes and resumes checkpoints, and a method may initialise
itself from another run's weights (DSH ``init_from``) without importing the engine.

One checkpoint = one file ``checkpoint.safetensors`` holding the model's state (``model/<name>``), the optimizer's
tensors flattened (``optim/<param index>/<key>``) and the torch CPU RNG state; its metadata field ``state`` holds the
JSON state (stage, epoch, history, optimizer hyper-parameters and scalar state, GradScaler state). Because it is one
file written by temp file + ``os.replace``, a kill at any moment leaves either the old or the new checkpoint, never a
mix. ``state.json`` is a human-readable copy of the same JSON, written after the checkpoint.

The metadata field ``sha256`` is a checksum over every tensor (name, dtype, shape, bytes) and the ``state`` JSON;
resume and eval recompute it, so flipped bytes or an edited state are an error (`CheckpointError`, naming the file
and suggesting ``--no-resume``) instead of silently different results. An unreadable file (truncated, empty,
garbled) is the same error. Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch

from safetensors.torch import load_file, safe_open, save_file

from bitrieve.atomic import json_default, write_json_atomic, write_with_atomic
from bitrieve.errors import CheckpointError

CHECKPOINT = "checkpoint.safetensors"
STATE = "state.json"


# --- optimizer state <-> flat tensors + JSON ----------------------------------------------------------------------
def flatten_optimizer(opt: torch.optim.Optimizer | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (``optim/<pid>/<key>``) and a JSON-able rest."""
    if opt is None:
        return {}, {}
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{pid}/{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith("optim/"):
            continue
        _, pid, key = name.split("/", 2)
        state.setdefault(int(pid), {})[key] = t
    for pid, vals in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(vals)
    return {"state": state, "param_groups": meta["param_groups"]}


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """``save_file`` through a temp file and a rename; a failed write (full disk: safetensors says only "Error while
    serializing: I/O error ...") names the file and says the previous one is intact."""
    from safetensors import SafetensorError

    try:
        write_with_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    except SafetensorError as e:
        raise OSError(f"{path}: could not be written ({e}); the previous file, if any, is unchanged") from None


# --- checkpoint ---------------------------------------------------------------------------------------------------
def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng/torch_cpu"] = torch.get_rng_state()
    full_state = dict(state, optimizer=opt_meta)
    state_json = json.dumps(full_state, default=json_default)
    meta = {"state": state_json, "format": "bitrieve-checkpoint-1", "sha256": checkpoint_sha256(tensors, state_json)}
    _write_safetensors(run_dir / CHECKPOINT, tensors, meta)
    write_json_atomic(run_dir / STATE, full_state)


def hash_tensors(h: "hashlib._Hash", tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed each (name, tensor) to ``h``: its name, dtype and shape as JSON, then its raw bytes (CPU, contiguous).
    Used by the checkpoint checksum and by the index's model fingerprint (index/model.py)."""
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def checkpoint_sha256(tensors: dict[str, torch.Tensor], state_json: str) -> str:
    """sha256 over every tensor (sorted by name) and the state JSON string, as stored in the metadata."""
    h = hashlib.sha256()
    hash_tensors(h, sorted(tensors.items()))
    h.update(state_json.encode("utf-8"))
    return h.hexdigest()


def _unreadable(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: not a readable safetensors checkpoint ({type(e).__name__}: {e}); the file is "
                           "truncated, empty or corrupt. Start the run over with --no-resume (bitrieve train CONFIG "
                           f"--out {path.parent} --no-resume)")


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors on the CPU) of a safetensors file; an unreadable file is a `CheckpointError` naming it."""
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return meta, load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(path, e) from None


def save_model(path: str | Path, model: torch.nn.Module) -> None:
    """The model's tensors alone (``model/<name>``), atomically, with the same checksum as a checkpoint: the kept
    model of a validation-selected run."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "bitrieve-model-1", "sha256": checkpoint_sha256(tensors, "")}
    _write_safetensors(Path(path), tensors, meta)


def load_model(path: str | Path, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
    """Load a :func:`save_model` file into ``model`` (safetensors: no code runs; checksum verified)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the kept model is missing (rerun with --no-resume)")
    meta, tensors = _read_safetensors(path)
    if meta.get("format") != "bitrieve-model-1":
        raise CheckpointError(f"{path}: not a bitrieve kept-model file (metadata 'format' is {meta.get('format')!r})")
    if checkpoint_sha256(tensors, "") != meta.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch: the kept model changed after it was written, so it cannot "
                              f"be trusted. Start the run over with --no-resume (bitrieve train CONFIG --out "
                              f"{path.parent} --no-resume)")
    model.load_state_dict({k[len("model/"):]: v.to(device) for k, v in tensors.items() if k.startswith("model/")})


def load_checkpoint(run_dir: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]] | None:
    """(model state, optimizer tensors, state JSON) of the run's checkpoint, or None when there is none.

    The checksum is verified; `CheckpointError` names the file when it is unreadable, not ours, or changed."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    meta, tensors = _read_safetensors(path)
    if meta.get("format") != "bitrieve-checkpoint-1" or "state" not in meta:
        raise CheckpointError(f"{path}: not a bitrieve checkpoint (metadata 'format' is {meta.get('format')!r}); "
                              f"start over with --no-resume or choose another --out")
    if "sha256" not in meta:  # written before checkpoints carried a checksum
        warnings.warn(f"{path}: no checksum (written by an older bitrieve); its contents are not verified",
                      stacklevel=2)
    elif checkpoint_sha256(tensors, meta["state"]) != meta["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch: its tensors or state changed after it was written (disk "
                              "corruption or an edited file), so it cannot be trusted. Start the run over with "
                              f"--no-resume (bitrieve train CONFIG --out {path.parent} --no-resume)")
    try:
        state = json.loads(meta["state"])
    except json.JSONDecodeError as e:
        raise _unreadable(path, e) from None
    if str(device) != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim/")}
    return model, optim, state
