"""Packed binary codes: the storage format every index backend reads.

Bit ``j`` of a code lives in 64-bit word ``j // 64`` at bit position ``j % 64`` (little-endian words, dtype ``<u8``).
Viewed as bytes, this is exactly ``np.packbits(bits, bitorder="little")`` padded with zero bytes, so FAISS binary
indexes (which take ``bits / 8`` bytes per code) read the same codes without repacking. Padding bits are zero in every
code, so they never change a Hamming distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitrieve.errors import BitrieveError

WORD = np.dtype("<u8")


class BinaryIndexError(BitrieveError, ValueError):
    """A problem with index inputs or files; the message names the file/array/shape."""


@dataclass(frozen=True)
class PackedCodes:
    """``words`` (N, ceil(bits / 64)) little-endian uint64 plus the true code length ``bits``."""

    words: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        if self.words.ndim != 2 or self.words.dtype != WORD:
            raise BinaryIndexError(f"packed codes must be a 2-d '<u8' array, got {self.words.dtype} {self.words.shape}")
        if self.bits < 1 or self.words.shape[1] != n_words(self.bits):
            raise BinaryIndexError(f"packed codes: {self.words.shape[1]} words per code do not fit bits={self.bits} "
                              f"(expected {n_words(self.bits)})")

    def __len__(self) -> int:
        return int(self.words.shape[0])

    def as_bytes(self) -> np.ndarray:
        """(N, ceil(bits / 8)) uint8 — the layout FAISS binary indexes use (a copy only when bits % 64 != 0)."""
        b = self.words.view(np.uint8).reshape(len(self), -1)
        nb = (self.bits + 7) // 8
        return b if b.shape[1] == nb else np.ascontiguousarray(b[:, :nb])


def n_words(bits: int) -> int:
    return (int(bits) + 63) // 64


def _to_bool(codes: np.ndarray, what: str) -> np.ndarray:
    if codes.dtype == np.bool_:
        return codes
    if np.issubdtype(codes.dtype, np.floating) and not np.isfinite(codes).all():
        raise BinaryIndexError(f"{what}: codes contain NaN/inf")
    values = np.unique(codes)
    if np.isin(values, (0, 1)).all():
        return codes == 1
    if np.isin(values, (-1, 1)).all():
        return codes > 0
    shown = values[:6].tolist()
    raise BinaryIndexError(f"{what}: codes must be binary (+1/-1 or 1/0), got values like {shown}; "
                      "take the sign of continuous outputs first")


def pack_codes(codes, what: str = "codes") -> PackedCodes:
    """Pack (N, bits) binary codes (+1/-1, 1/0 or bool; numpy or torch) into :class:`PackedCodes`.

    A :class:`PackedCodes` is returned unchanged; ``bitrieve.eval.hamming.Codes`` (same layout) is wrapped.
    """
    if isinstance(codes, PackedCodes):
        return codes
    if hasattr(codes, "words") and hasattr(codes, "bits"):  # bitrieve.eval.hamming.Codes: the same bit layout
        return PackedCodes(np.ascontiguousarray(np.asarray(codes.words).astype(WORD, copy=False)), int(codes.bits))
    if hasattr(codes, "detach"):  # torch tensor
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise BinaryIndexError(f"{what}: expected an (N, bits) array, got shape {codes.shape}")
    n, bits = codes.shape
    if bits < 1:
        raise BinaryIndexError(f"{what}: zero-length codes")
    b = np.packbits(_to_bool(codes, what), axis=1, bitorder="little")
    w = n_words(bits)
    if b.shape[1] != w * 8:
        b = np.concatenate([b, np.zeros((n, w * 8 - b.shape[1]), np.uint8)], axis=1)
    return PackedCodes(np.ascontiguousarray(b).view(WORD), int(bits))


def unpack_codes(packed: PackedCodes) -> np.ndarray:
    """(N, bits) uint8 0/1 — the inverse of :func:`pack_codes`."""
    b = packed.words.view(np.uint8).reshape(len(packed), -1)
    return np.unpackbits(b, axis=1, bitorder="little", count=packed.bits)
