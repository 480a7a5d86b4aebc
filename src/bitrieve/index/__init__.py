"""Binary index: exact packed-bit Hamming search (ours, numba), FAISS binary backends, verified save/load.

See docs/index.md. ``BinaryIndex.build(codes, ids, meta)``, ``.search(query_codes, k)``, ``.save(dir)``,
``BinaryIndex.load(dir, expected_model_hash=...)``.
"""

from bitrieve.index.binary_index import BACKENDS, BinaryIndex, SearchResult
from bitrieve.codes import Codes
from bitrieve.errors import BinaryIndexError
from bitrieve.index.exact import exact_topk

__all__ = ["BACKENDS", "BinaryIndex", "BinaryIndexError", "Codes", "SearchResult", "exact_topk"]
