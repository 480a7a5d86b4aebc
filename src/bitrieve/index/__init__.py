"""Binary index: exact packed-bit Hamming search (ours, numba), FAISS binary backends, verified save/load.

See docs/index.md. ``BinaryIndex.build(codes, ids, meta)``, ``.search(query_codes, k)``, ``.save(dir)``,
``BinaryIndex.load(dir, expected_model_hash=...)``.
"""

from bitrieve.index.binary_index import BACKENDS, BinaryIndex, SearchResult
from bitrieve.index.codes import BinaryIndexError, PackedCodes, pack_codes, unpack_codes
from bitrieve.index.exact import exact_topk

__all__ = ["BACKENDS", "BinaryIndex", "BinaryIndexError", "PackedCodes", "SearchResult", "exact_topk", "pack_codes",
           "unpack_codes"]
