"""Binary codes: the one packed-codes type, its validator, the sign rule and the bit layout.

Every layer that holds binary codes imports this module: the engine signs a method's outputs with :func:`sign`,
eval ranks :class:`Codes`, the index stores and searches them. (The popcount is :mod:`bitrieve.codes.popcount`, a
numba kernel kept apart so that importing this module loads numpy only.)

- Sign rule: ``h >= 0 -> +1`` (bit 1), ``h < 0 -> -1`` (bit 0). An exact 0 maps to +1, so a code never has a third
  value.
- Accepted code arrays, shape (items, bits), 1 <= bits <= 1024: ±1 or 0/1 (any numeric dtype, a torch tensor) or
  bool; +1 / 1 / True is bit 1. Anything else (a sign() that produced 0, NaN, other values) is a
  :class:`CodesError` naming the array.
- Layout: bit ``i`` of a code is bit ``i % 64`` (least significant first) of little-endian uint64 word ``i // 64``.
  The uint8 view (:meth:`Codes.to_bytes`) is the same bits, byte ``i // 8``, bit ``i % 8``
  (``np.packbits(bitorder="little")``), the layout FAISS binary indexes read. Padding bits are 0 in every code, so
  they never add to a Hamming distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitrieve.errors import BitrieveError

MAX_BITS = 1024
WORD = np.dtype("<u8")


class CodesError(BitrieveError, ValueError):
    """Code arrays that are not binary codes (shape, values, bit count); the message names the array."""


def n_words(bits: int) -> int:
    """uint64 words per code of ``bits`` bits."""
    return (int(bits) + 63) // 64


def as_numpy(x, what: str) -> np.ndarray:
    """A numpy view of ``x`` (numpy, a list, or a torch tensor - moved to the CPU; torch is not imported)."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise CodesError(f"{what}: cannot convert {type(x).__name__} to a numpy array ({exc})") from exc


def sign_bits(h) -> np.ndarray:
    """The sign rule as bits: bool (N, bits), True (+1) where ``h >= 0`` (a 0 is +1). ``h``: numpy or torch."""
    if hasattr(h, "detach"):
        return (h.detach() >= 0).cpu().numpy()
    return np.asarray(h) >= 0


def sign(h) -> np.ndarray:
    """{-1, +1} int8 codes of continuous outputs ``h`` by the sign rule (``h >= 0 -> +1``)."""
    return np.where(sign_bits(h), 1, -1).astype(np.int8)


def to_bits(codes, what: str = "codes", allow_empty: bool = False) -> np.ndarray:
    """The one validator: ±1 / 0/1 / bool codes (N, bits) -> bool bits (+1 / 1 -> True).

    Raises :class:`CodesError` naming ``what`` for: not 2-d, no items (unless ``allow_empty``), no bits, more than
    1024 bits, a non-numeric dtype, NaN/inf, values other than {-1, +1} or {0, 1} (e.g. a sign() that produced 0).
    """
    a = as_numpy(codes, what)
    if a.ndim != 2:
        raise CodesError(f"{what}: expected a 2-d array (items, bits), got shape {a.shape}")
    if a.shape[1] == 0 or (a.shape[0] == 0 and not allow_empty):
        raise CodesError(f"{what}: empty input, shape {a.shape}")
    if a.shape[1] > MAX_BITS:
        raise CodesError(f"{what}: {a.shape[1]} bits; at most {MAX_BITS} are supported")
    if a.dtype == np.bool_:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise CodesError(f"{what}: codes must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise CodesError(f"{what}: codes contain NaN or inf")
    one = a == 1
    if (one | (a == -1)).all() or (one | (a == 0)).all():  # {-1, +1} or {0, 1}
        return one
    values = np.unique(a)
    shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
    raise CodesError(
        f"{what}: codes are not binary; expected values in {{-1, +1}} or {{0, 1}}, found {{{shown}}}"
        + (" (a sign() of exact zeros gives 0: map them to +1 or -1 first)" if {-1, 0, 1} <= set(values.tolist())
           else "; take the sign of continuous outputs first")
    )


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """The one packer: bool (N, B) -> (N, ceil(B / 64)) little-endian uint64 words in the module's layout (labels
    use it too: label j of an item is bit j)."""
    n, b = bits.shape
    by = np.packbits(bits, axis=1, bitorder="little")
    padded = np.zeros((n, n_words(b) * 8), np.uint8)
    padded[:, : by.shape[1]] = by
    return padded.view(WORD)


@dataclass(frozen=True)
class Codes:
    """Packed binary codes: ``words`` (N, ceil(bits / 64)) little-endian uint64 and the true bit count ``bits``."""

    words: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        if self.words.ndim != 2 or self.words.dtype != WORD:
            raise CodesError(f"packed codes must be a 2-d '<u8' array, got {self.words.dtype} {self.words.shape}")
        if not 1 <= self.bits <= MAX_BITS or self.words.shape[1] != n_words(self.bits):
            raise CodesError(f"packed codes: {self.words.shape[1]} words per code do not fit bits={self.bits} "
                             f"(expected {n_words(self.bits)}; 1 <= bits <= {MAX_BITS})")

    @classmethod
    def pack(cls, codes, what: str = "codes", allow_empty: bool = False) -> "Codes":
        """Pack ±1 / 0/1 / bool codes of shape (N, bits) (numpy or torch); a ``Codes`` is returned unchanged."""
        if isinstance(codes, Codes):
            return codes
        b = to_bits(codes, what, allow_empty)
        return cls(pack_bits(b), int(b.shape[1]))

    @classmethod
    def from_bytes(cls, packed: np.ndarray, bits: int) -> "Codes":
        """From uint8 bytes (N, ceil(bits/8)) in the ``to_bytes`` layout."""
        packed = np.asarray(packed, np.uint8)
        if packed.ndim != 2 or packed.shape[1] != (bits + 7) // 8:
            raise CodesError(f"Codes.from_bytes: expected shape (N, {(bits + 7) // 8}) for {bits} bits, "
                             f"got {packed.shape}")
        return cls.pack(np.unpackbits(packed, axis=1, count=bits, bitorder="little").astype(bool))

    def __len__(self) -> int:
        return int(self.words.shape[0])

    def to_bytes(self) -> np.ndarray:
        """(N, ceil(bits / 8)) uint8, bit i in byte i // 8, bit i % 8 (FAISS binary indexes read bytes); a view when
        bits is a multiple of 64, else a copy."""
        b = np.ascontiguousarray(self.words).view(np.uint8).reshape(len(self), -1)
        nb = (self.bits + 7) // 8
        return b if b.shape[1] == nb else np.ascontiguousarray(b[:, :nb])

    def unpack(self, signed: bool = True) -> np.ndarray:
        """(N, bits) int8 codes: ±1 if ``signed`` else 0/1."""
        b = np.unpackbits(self.to_bytes(), axis=1, count=self.bits, bitorder="little").astype(np.int8)
        return 2 * b - 1 if signed else b
