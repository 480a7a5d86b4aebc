"""Binary codes packed into bits, Hamming distances by popcount, and stable Hamming ranking.

Bit layout: bit i of a code is bit ``i % 64`` (least significant first) of uint64 word ``i // 64``; the uint8 view
(``Codes.to_bytes``) is the same bits, byte ``i // 8``, bit ``i % 8`` (``np.packbits(bitorder="little")``).
Any code length 1..1024 is allowed; padding bits are always 0 in both query and database, so they never add to a
distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels

MAX_BITS = 1024


def _as_numpy(x, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{what}: cannot convert {type(x).__name__} to a numpy array ({exc})") from exc


def to_bits(codes, what: str = "codes") -> np.ndarray:
    """Validate ±1 or 0/1 codes (N, bits) and return them as a bool array of bits (+1 / 1 -> True).

    Raises ValueError naming ``what`` for: not 2-d, empty, NaN/inf, values other than {-1, +1} or {0, 1} (e.g. a
    sign() that produced zeros), more than 1024 bits.
    """
    a = _as_numpy(codes, what)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d array (items, bits), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what}: empty input, shape {a.shape}")
    if a.shape[1] > MAX_BITS:
        raise ValueError(f"{what}: {a.shape[1]} bits; at most {MAX_BITS} are supported")
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.number)):
        raise ValueError(f"{what}: codes must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{what}: codes contain NaN or inf")
    one = a == 1
    if (one | (a == -1)).all() or (one | (a == 0)).all():  # {-1, +1} or {0, 1}
        return one
    values = np.unique(a)
    shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
    raise ValueError(
        f"{what}: codes are not binary; expected values in {{-1, +1}} or {{0, 1}}, found {{{shown}}}"
        + (" (a sign() of exact zeros gives 0: map them to +1 or -1 first)" if {-1, 0, 1} <= set(values.tolist())
           else "")
    )


@dataclass(frozen=True)
class Codes:
    """Packed binary codes: ``words`` (N, ceil(bits/64)) uint64 and the true bit count ``bits``."""

    words: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        if self.words.dtype != np.uint64 or self.words.ndim != 2:
            raise ValueError(f"Codes.words must be a 2-d uint64 array, got {self.words.dtype} {self.words.shape}")
        if not 1 <= self.bits <= MAX_BITS or self.words.shape[1] != (self.bits + 63) // 64:
            raise ValueError(f"Codes: {self.bits} bits do not fit {self.words.shape[1]} uint64 words")

    @classmethod
    def pack(cls, codes, what: str = "codes") -> "Codes":
        """Pack ±1 / 0/1 / bool codes of shape (N, bits); an existing ``Codes`` is returned unchanged."""
        if isinstance(codes, Codes):
            return codes
        b = to_bits(codes, what)
        n, bits = b.shape
        nwords = (bits + 63) // 64
        by = np.packbits(b, axis=1, bitorder="little")
        padded = np.zeros((n, nwords * 8), np.uint8)
        padded[:, : by.shape[1]] = by
        words = padded.view("<u8").astype(np.uint64, copy=False)
        return cls(np.ascontiguousarray(words), int(bits))

    @classmethod
    def from_bytes(cls, packed: np.ndarray, bits: int) -> "Codes":
        """From uint8 bytes (N, ceil(bits/8)) in the ``to_bytes`` layout."""
        packed = np.asarray(packed, np.uint8)
        if packed.ndim != 2 or packed.shape[1] != (bits + 7) // 8:
            raise ValueError(f"Codes.from_bytes: expected shape (N, {(bits + 7) // 8}) for {bits} bits, "
                             f"got {packed.shape}")
        return cls.pack(np.unpackbits(packed, axis=1, count=bits, bitorder="little").astype(bool))

    def __len__(self) -> int:
        return int(self.words.shape[0])

    def to_bytes(self) -> np.ndarray:
        """uint8 (N, ceil(bits/8)) with bit i in byte i // 8, bit i % 8 (FAISS binary indexes use bytes)."""
        by = np.ascontiguousarray(self.words.astype("<u8")).view(np.uint8)
        return np.ascontiguousarray(by[:, : (self.bits + 7) // 8])

    def unpack(self, signed: bool = True) -> np.ndarray:
        """(N, bits) int8 codes: ±1 if ``signed`` else 0/1."""
        b = np.unpackbits(self.to_bytes(), axis=1, count=self.bits, bitorder="little").astype(np.int8)
        return 2 * b - 1 if signed else b

    def hamming_distance(self, other: "Codes | np.ndarray", chunk: int = 1024) -> np.ndarray:
        """(len(self), len(other)) uint16 Hamming distances (the full matrix: use for small sets)."""
        other = Codes.pack(other, "other codes")
        check_same_bits(self, other)
        out = np.empty((len(self), len(other)), np.uint16)
        for a in range(0, len(self), chunk):
            out[a:a + chunk] = _kernels.hamming_matrix(self.words[a:a + chunk], other.words)
        return out


def check_same_bits(query: Codes, db: Codes) -> None:
    if query.bits != db.bits:
        raise ValueError(f"bit-length mismatch: query codes have {query.bits} bits, database codes {db.bits}")


def hamming_rank(query, db, k: int | None = None, chunk: int | None = None) -> np.ndarray:
    """Database indices ranked by ascending Hamming distance, ties by database order (stable).

    ``query``, ``db``: ±1 / 0/1 arrays or ``Codes``. Returns int64 (n_query, k) (k=None: all N). A counting sort
    over the distances 0..bits, parallel over queries: O(N + bits) time per query. Memory: the (n_query, k) output
    plus 2 bytes x N scratch per running query; ``chunk`` queries at a time (default: 256 MiB of output per chunk).
    """
    q = Codes.pack(query, "query codes")
    d = Codes.pack(db, "database codes")
    check_same_bits(q, d)
    n = len(d)
    k = n if k is None else int(k)
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    k = min(k, n)
    if chunk is None:
        chunk = max(1, (256 << 20) // (8 * k))
    out = np.empty((len(q), k), np.int64)
    for a in range(0, len(q), chunk):
        out[a:a + chunk] = _kernels.rank_stable(q.words[a:a + chunk], d.words, d.bits, k)
    return out
