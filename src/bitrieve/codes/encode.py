"""The one encode loop: a method's outputs for an input array, batch by batch, then the sign rule of
:mod:`bitrieve.codes`.

The engine's evaluation, the index and the pair-input evaluation all encode through :func:`run_batches`: the method
in eval mode (its mode restored afterwards), no autograd, each batch moved to ``device``, float64 inputs as float32,
optional autocast, optional progress bar. What differs is only what is kept of a batch:

- :func:`encode` -> continuous outputs (N, width) float32 on the CPU (the engine signs them with ``codes.sign``);
- :func:`encode_codes` -> packed :class:`~bitrieve.codes.Codes`, each batch signed and packed at once, so the peak
  memory is one batch of inputs and its ``batch × bits`` outputs (the index encodes whole databases this way);
- :func:`encode_pairs` -> (image outputs, text outputs) of a method's ``encode_pair(image, text, ...)`` hook, whose
  code of an item depends on both of its inputs (UCMFH's released pair-input evaluation, methods/families/pair_input.py).

Kept in a module of its own so that ``import bitrieve.codes`` loads numpy only.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from bitrieve.codes import WORD, Codes, CodesError, n_words, pack_bits, sign_bits


class EncodeShapeError(CodesError):
    """A method's encode returned an array of the wrong shape (the message names the method and both shapes)."""


def as_tensor(a: np.ndarray) -> torch.Tensor:
    """A torch view of a numpy batch; float64 becomes float32 (what every method trains on). A read-only array (a
    slice of a memory-mapped store file) is copied, so torch never holds a view it may not write; a store's
    `WidenedArray` (binary tags kept uint8) gives float32 rows when sliced, so a batch is widened, not the store."""
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    t = torch.from_numpy(a)
    return t.float() if t.dtype == torch.float64 else t


@contextlib.contextmanager
def eval_mode(method) -> Iterator[None]:
    """``method`` in eval mode for the block, its previous mode restored afterwards (also on an error)."""
    was_training = method.training
    method.eval()
    try:
        yield
    finally:
        method.train(was_training)


def run_batches(fn: Callable[..., Any], method, arrays: Sequence[np.ndarray], *, batch_size: int, device: Any = "cpu",
                rows: int | None = None, drop_last: bool = False, autocast: Callable[[], Any] | None = None,
                progress: bool = False, desc: str = "encode") -> Iterator[tuple[int, Any]]:
    """Yield ``(start, fn(*batch))`` for consecutive batches of the first ``rows`` rows (all when None) of
    ``arrays`` (same length), ``method`` in eval mode under ``torch.inference_mode()``. ``drop_last`` leaves out a last
    incomplete batch (only the released pair-input evaluation asks for that)."""
    n = len(arrays[0]) if rows is None else min(int(rows), len(arrays[0]))
    stop = n - n % batch_size if drop_last else n
    starts = range(0, stop, batch_size)
    if progress and len(starts) >= 4:
        from bitrieve.console import progress as progress_bar

        starts = progress_bar(starts, desc=desc, leave=False, unit="batch", total=len(starts))
    with eval_mode(method), torch.inference_mode():  # no autograd records, no version counters
        for s in starts:
            e = min(s + batch_size, n)
            batch = [as_tensor(a[s:e]).to(device, non_blocking=True) for a in arrays]
            with autocast() if autocast is not None else contextlib.nullcontext():
                yield s, fn(*batch)


def _checked(method, modality: str, h: torch.Tensor, n: int, bits: int | None) -> torch.Tensor:
    if h.ndim != 2 or h.shape[0] != n or (bits is not None and h.shape[1] != bits):
        raise EncodeShapeError(f"{type(method).__name__}.encode('{modality}') returned shape {tuple(h.shape)}, "
                               f"expected ({n}, {'bits' if bits is None else bits})")
    return h


def encode(method, inputs: np.ndarray, modality: str, *, device: Any = "cpu", batch_size: int = 2048,
           rows: int | None = None, autocast: Callable[[], Any] | None = None, progress: bool = False) -> torch.Tensor:
    """Continuous outputs ``method.encode(modality, x)`` of the first ``rows`` rows of ``inputs``: (N, width)
    float32 on the CPU (width = bits for hashing methods; embedding methods may differ). Sign them with
    :func:`bitrieve.codes.sign` for ±1 codes."""
    out = []
    for _, (x, h) in run_batches(lambda x: (x, method.encode(modality, x)), method, [inputs], batch_size=batch_size,
                                 device=device, rows=rows, autocast=autocast, progress=progress,
                                 desc=f"encode {modality}"):
        out.append(_checked(method, modality, h, x.shape[0], None).detach().float().cpu())
    return torch.cat(out) if out else torch.zeros(0, int(method.bits))


def encode_codes(method, inputs: np.ndarray, modality: str, *, device: Any = "cpu", batch_size: int = 8192,
                 progress: bool = False) -> Codes:
    """Packed codes of ``inputs`` by the sign rule (``h >= 0`` -> bit 1), each batch signed and packed as soon as
    it is encoded; the outputs must be (rows, ``method.bits``)."""
    bits = int(method.bits)
    words = np.empty((len(inputs), n_words(bits)), WORD)
    for s, (x, h) in run_batches(lambda x: (x, method.encode(modality, x)), method, [inputs], batch_size=batch_size,
                                 device=device, progress=progress, desc=f"encode {modality}"):
        words[s:s + x.shape[0]] = pack_bits(sign_bits(_checked(method, modality, h, x.shape[0], bits)))
    return Codes(words, bits)


def encode_pairs(method, image: np.ndarray, text: np.ndarray, *, device: Any = "cpu", batch_size: int = 128,
                 drop_last: bool = False, **hook_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(image outputs, text outputs), float32 on the CPU, of ``method.encode_pair(image_batch, text_batch,
    **hook_kwargs)`` over batches of ``batch_size`` items: each item's two codes come from its (image, text) pair.
    The batch size matters to methods whose ``hook_kwargs`` make a batch one sequence (UCMFH's released
    evaluation); ``drop_last`` leaves out a last incomplete batch, as that evaluation does."""
    hv, ht = [], []
    for _, (cv, ct) in run_batches(lambda i, t: method.encode_pair(i, t, **hook_kwargs), method, [image, text],
                                   batch_size=batch_size, device=device, drop_last=drop_last):
        hv.append(cv.detach().float().cpu())
        ht.append(ct.detach().float().cpu())
    if not hv:
        return torch.zeros(0, int(method.bits)), torch.zeros(0, int(method.bits))
    return torch.cat(hv), torch.cat(ht)
