"""Binary index: exact packed-bit Hamming search (ours, numba), FAISS binary backends, verified save/load.

See docs/index.md. ``BinaryIndex.build(codes, ids, meta)``, ``.search(query_codes, k)``, ``.save(dir)``,
``BinaryIndex.load(dir, expected_model_hash=...)``.
"""

from bitrieve.index.binary_index import BACKENDS, BinaryIndex, SearchResult
from bitrieve.codes import Codes
from bitrieve.errors import BinaryIndexError

__all__ = ["BACKENDS", "BinaryIndex", "BinaryIndexError", "Codes", "SearchResult", "exact_topk"]


def __getattr__(name: str):
    if name == "exact_topk":  # imported on use: numba's import costs a command that does not search ~0.5 s
        from bitrieve.index.exact import exact_topk

        return exact_topk
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
