"""``BinaryIndex``: packed codes + ids + the hash of the model that made them, searchable by Hamming distance.

    index = BinaryIndex.build(codes, ids, meta={"model_hash": h}, backend="exact")
    ids, dist = index.search(query_codes, k=10)          # (Q, k) each, nearest first
    hits = index.radius_search(query_codes, radius=2)    # every item within Hamming distance 2 (exact)
    index = index.add(more_codes, more_ids)              # a new index: these items appended
    index.save("idx/"); BinaryIndex.load("idx/", expected_model_hash=h)
    index.queries = StoredQueries(ids, {"text": codes}, source)  # optional: query items' codes, kept by save/load

Backends: ``exact`` (ours, numba; ties in database order; a few queries are scanned in numpy instead, scan.py),
``faiss-flat`` (exact distances, FAISS tie order), ``faiss-ivf`` and ``faiss-hnsw`` (approximate). Codes from a
different model (another checkpoint, another bit length) are meaningless against this database, so ``load`` and
``search`` refuse them with an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bitrieve.codes import WORD, Codes, n_words
from bitrieve.errors import BinaryIndexError
from bitrieve.index.scan import SCAN_CELLS, scan_radius, scan_topk
from bitrieve.index.faiss_backend import FAISS_BACKENDS, build_faiss, check_bits, clone_faiss, faiss_search, read_faiss, \
    write_faiss
from bitrieve.index.store import MANIFEST, load_array, read_manifest, verify_file, write_index_dir

BACKENDS = ("exact",) + FAISS_BACKENDS
FAISS_FILE = "faiss.index"
BUILD_PARAMS = {"nlist", "hnsw_m", "seed"}


def _unique(ids: np.ndarray) -> bool:
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):  # the usual case: increasing ids, O(N)
        return True
    s = np.sort(ids)  # (np.unique's hash path is ~30x slower than a sort on 1M int64 with numpy 2.4)
    return not bool((s[1:] == s[:-1]).any())


class SearchResult(NamedTuple):
    ids: np.ndarray        # (Q, k) int64 item ids, nearest first; -1 where an approximate backend found nothing
    distances: np.ndarray  # (Q, k) int32 Hamming distances; -1 where ids is -1


class RadiusResult(NamedTuple):
    """Every item within the radius, per query: query q's hits are ``ids[offsets[q]:offsets[q + 1]]`` (and
    ``distances`` alike), sorted by (distance, database position)."""
    offsets: np.ndarray    # (Q + 1,) int64
    ids: np.ndarray        # (total hits,) int64
    distances: np.ndarray  # (total hits,) int32

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def query(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of query ``q``."""
        a, b = self.offsets[q], self.offsets[q + 1]
        return self.ids[a:b], self.distances[a:b]


class StoredQueries(NamedTuple):
    """Codes of one split's items (``source["split"]``, the query split) in each modality, made by the index's model
    when the index was built: ``search --ids`` of these items is then a table lookup, no model loaded.
    ``source``: JSON facts that say when the table still holds what the model would encode (cli.py checks them)."""
    ids: np.ndarray              # (M,) int64, in split order
    codes: dict[str, Codes]      # modality -> M packed codes
    source: dict[str, Any]

    def lookup(self, wanted: list[int], modality: str) -> Codes | None:
        """The codes of ``wanted`` ids (an id's first row, as the split is scanned), or None if an id is not here."""
        if modality not in self.codes:
            return None
        first = {}
        for row, item in enumerate(self.ids.tolist()):
            first.setdefault(item, row)
        rows = [first.get(int(i)) for i in wanted]
        if None in rows:
            return None
        codes = self.codes[modality]
        return Codes(codes.words[rows], codes.bits)


class BinaryIndex:
    def __init__(self, codes: Codes, ids: np.ndarray, meta: dict[str, Any] | None = None,
                 backend: str = "exact", params: dict[str, Any] | None = None, _faiss=None):
        if backend not in BACKENDS:
            raise BinaryIndexError(f"unknown backend '{backend}' (have {', '.join(BACKENDS)})")
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.shape[0] != len(codes):
            raise BinaryIndexError(f"ids must be 1-d with one id per code ({len(codes)}), got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise BinaryIndexError(f"ids must be integers, got {ids.dtype}")
        if backend != "exact":
            check_bits(codes.bits, backend)
        self.codes = codes
        self.ids = ids.astype(np.int64, copy=False)
        self.meta = dict(meta or {})
        self.backend = backend
        self.params = dict(params or {})
        self._faiss = _faiss
        self._db_t = None  # word-major codes for exact search, made on first search
        self.queries: StoredQueries | None = None

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def build(cls, codes, ids, meta: dict[str, Any] | None = None, backend: str = "exact",
              progress: bool = False, **params) -> "BinaryIndex":
        """Index ``codes`` ((N, bits) ±1/0-1/bool, or Codes) under ``ids``.

        ``meta``: JSON-serialisable facts stored with the index; ``meta["model_hash"]`` is checked at load/search
        time. ``params``: ``nlist`` (faiss-ivf), ``hnsw_m`` (faiss-hnsw), ``seed`` (IVF training sample).
        """
        unknown = sorted(set(params) - BUILD_PARAMS)
        if unknown:
            raise BinaryIndexError(f"unknown build parameter(s) {unknown} (have {sorted(BUILD_PARAMS)})")
        try:
            json.dumps(meta or {})
        except TypeError as e:
            raise BinaryIndexError(f"meta must be JSON-serialisable (it is stored in manifest.json): {e}") from None
        packed = Codes.pack(codes, "database codes", allow_empty=True)
        index = cls(packed, ids, meta, backend, params)
        if not _unique(index.ids):
            raise BinaryIndexError("ids are not unique")
        index._build_backend(progress)
        return index

    def _build_backend(self, progress: bool = False) -> None:
        if self.backend != "exact":
            self._faiss = build_faiss(self.codes, self.backend, nlist=self.params.get("nlist"),
                                      hnsw_m=self.params.get("hnsw_m", 32), seed=self.params.get("seed", 0),
                                      progress=progress)

    @property
    def bits(self) -> int:
        return self.codes.bits

    @property
    def model_hash(self) -> str | None:
        return self.meta.get("model_hash")

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return f"BinaryIndex(n={len(self)}, bits={self.bits}, backend={self.backend!r}, model_hash={self.model_hash!r})"

    def check_model(self, model_hash: str | None, where: str = "query model") -> None:
        """Refuse codes made by a model other than the one that encoded the database."""
        if model_hash is None:
            return
        if self.model_hash is None:
            raise BinaryIndexError(f"{where} has hash {model_hash[:16]}..., but this index records no model hash "
                                   "(it was built from raw codes); cannot verify the codes are compatible")
        if model_hash != self.model_hash:
            raise BinaryIndexError(f"{where} (hash {model_hash[:16]}...) is not the model that encoded this index "
                                   f"(hash {self.model_hash[:16]}...); encode queries with the same run, or rebuild "
                                   "the index")

    # --- search -----------------------------------------------------------------------------------------------
    def search(self, query_codes, k: int = 10, model_hash: str | None = None, *, nprobe: int | None = None,
               ef_search: int | None = None, chunk: int = 4096, progress: bool = False) -> SearchResult:
        """Top-``k`` items per query, nearest first (k is capped at the database size).

        ``model_hash``: hash of the model that encoded the queries; refused if it is not the index's.
        """
        self.check_model(model_hash)
        q = Codes.pack(query_codes, "query codes", allow_empty=True)
        if q.bits != self.bits:
            raise BinaryIndexError(f"query codes have {q.bits} bits, the index has {self.bits}")
        if self.backend == "exact" and len(q) * len(self) <= SCAN_CELLS:
            pos, dist = scan_topk(q, self.codes, k)  # no numba import or kernel load (scan.py)
        elif self.backend == "exact":
            from bitrieve.index.exact import exact_topk  # imports numba: only when searching many queries

            pos, dist = exact_topk(q, self.codes, k, chunk=chunk, progress=progress, db_t=self._word_major())
        else:
            pos, dist = faiss_search(self._faiss, q, k, nprobe=nprobe, ef_search=ef_search)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)
        return SearchResult(ids, dist)

    def radius_search(self, query_codes, radius: int, model_hash: str | None = None, chunk: int = 4096,
                      max_results: int = 100_000_000) -> RadiusResult:
        """Every item within Hamming distance ``radius`` of each query (the classic hash lookup), exact for every
        backend: it scans the stored codes with ``index.exact.exact_radius`` (a few queries: ``scan.scan_radius``),
        ties in database order."""
        self.check_model(model_hash)
        q = Codes.pack(query_codes, "query codes", allow_empty=True)
        if q.bits != self.bits:
            raise BinaryIndexError(f"query codes have {q.bits} bits, the index has {self.bits}")
        if len(q) * len(self) <= min(SCAN_CELLS, max_results):  # so its hits cannot exceed max_results
            offsets, pos, dist = scan_radius(q, self.codes, radius)
        else:
            from bitrieve.index.exact import exact_radius

            offsets, pos, dist = exact_radius(q, self.codes, radius, chunk=chunk, db_t=self._word_major(),
                                              max_results=max_results)
        return RadiusResult(offsets, self.ids[pos], dist)

    def _word_major(self) -> np.ndarray:
        """The codes word-major for the numba kernels, made once (index/exact.py)."""
        if self._db_t is None:
            from bitrieve.index.exact import word_major

            self._db_t = word_major(self.codes)
        return self._db_t

    # --- appending --------------------------------------------------------------------------------------------
    def add(self, codes, ids, model_hash: str | None = None, source: dict[str, Any] | None = None) -> "BinaryIndex":
        """A new index with ``codes`` (same bit length, from the same model: ``model_hash`` is checked) appended
        under ``ids`` (new ids only). FAISS structures are extended, not rebuilt (IVF keeps its trained lists).
        ``source``: JSON facts about the added items, appended to ``meta["added"]``. This index is unchanged;
        ``save`` the result to replace the files atomically."""
        self.check_model(model_hash)
        new = Codes.pack(codes, "added codes", allow_empty=True)
        if new.bits != self.bits:
            raise BinaryIndexError(f"added codes have {new.bits} bits, the index has {self.bits}")
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.shape[0] != len(new) or not np.issubdtype(ids.dtype, np.integer):
            raise BinaryIndexError(f"added ids must be 1-d integers, one per code ({len(new)}), got {ids.dtype} "
                                   f"{ids.shape}")
        clash = np.intersect1d(self.ids, ids)
        if clash.size:
            raise BinaryIndexError(f"{clash.size} added id(s) are already in the index (e.g. {clash[:5].tolist()}); "
                                   "ids must stay unique")
        if not _unique(ids.astype(np.int64)):
            raise BinaryIndexError("added ids are not unique")
        meta = dict(self.meta)
        if source is not None:
            try:
                json.dumps(source)
            except TypeError as e:
                raise BinaryIndexError(f"source must be JSON-serialisable (it is stored in manifest.json): {e}") \
                    from None
            meta["added"] = list(meta.get("added", [])) + [dict(source, count=len(new))]
        words = np.concatenate([self.codes.words, new.words])
        out = BinaryIndex(Codes(words, self.bits), np.concatenate([self.ids, ids.astype(np.int64)]), meta,
                          self.backend, self.params)
        out.queries = self.queries  # same model (checked above): the query items' codes stay valid
        if self.backend in ("faiss-ivf", "faiss-hnsw") and self._faiss is not None:
            out._faiss = clone_faiss(self._faiss)  # this index stays as it is; IVF keeps its trained lists
            out._faiss.add(np.ascontiguousarray(new.to_bytes()))
        else:
            out._build_backend()  # exact: nothing to build; flat: rebuilt from the codes, as at load time
        return out

    # --- persistence ------------------------------------------------------------------------------------------
    def save(self, out: str | Path) -> Path:
        """Write the index to directory ``out`` atomically (see bitrieve.index.store for the layout)."""
        extra = {}
        if self.backend in ("faiss-ivf", "faiss-hnsw"):  # expensive to rebuild; flat is rebuilt from codes
            extra[FAISS_FILE] = lambda path: write_faiss(self._faiss, path)
        manifest = {"backend": self.backend, "bits": self.bits, "count": len(self), "words": self.codes.words.shape[1],
                    "model_hash": self.model_hash, "params": self.params, "meta": self.meta}
        arrays = {"codes": self.codes.words, "ids": self.ids}
        if self.queries is not None:  # sealed by the same manifest as the database's files
            q = self.queries
            if any(c.bits != self.bits or len(c) != len(q.ids) for c in q.codes.values()):
                raise BinaryIndexError(f"stored query codes must be {len(q.ids)} codes of {self.bits} bits")
            manifest["queries"] = {**q.source, "count": len(q.ids), "modalities": sorted(q.codes)}
            arrays["query_ids"] = q.ids.astype(np.int64, copy=False)
            arrays.update({f"query_codes.{mod}": c.words for mod, c in q.codes.items()})
        return write_index_dir(out, arrays, manifest, extra)

    @classmethod
    def load(cls, index_dir: str | Path, expected_model_hash: str | None = None, expected_bits: int | None = None,
             mmap: bool = False) -> "BinaryIndex":
        """Load and verify an index: sha256 of every file, array shapes, bit length, and (if given) the model hash.

        ``mmap=True`` maps the codes instead of reading them into memory (they are still checksummed first).
        """
        index_dir = Path(index_dir)
        m = read_manifest(index_dir)
        where = index_dir / MANIFEST
        bits, count, backend = int(m["bits"]), int(m["count"]), m["backend"]
        if backend not in BACKENDS:
            raise BinaryIndexError(f"{where}: unknown backend '{backend}'")
        if expected_bits is not None and bits != expected_bits:
            raise BinaryIndexError(f"{index_dir}: index has {bits}-bit codes, expected {expected_bits} bits")
        words = load_array(index_dir, "codes", m, mmap=mmap)
        ids = load_array(index_dir, "ids", m)
        if words.dtype != WORD or words.shape != (count, n_words(bits)):
            raise BinaryIndexError(f"{index_dir / 'codes.npy'}: shape {words.shape} dtype {words.dtype} does not fit "
                                   f"{count} codes of {bits} bits ({(count, n_words(bits))} '<u8')")
        if ids.shape != (count,):
            raise BinaryIndexError(f"{index_dir / 'ids.npy'}: shape {ids.shape}, expected ({count},)")
        if bits % 64 and not mmap and (words[:, -1] >> np.uint64(bits % 64)).any():
            raise BinaryIndexError(f"{index_dir / 'codes.npy'}: padding bits beyond bit {bits} are set; "
                                   "the file was not written by bitrieve for this bit length")
        index = cls(Codes(words, bits), ids, m.get("meta") or {}, backend, m.get("params") or {})
        if m.get("model_hash") != index.model_hash:
            raise BinaryIndexError(f"{where}: model_hash and meta.model_hash disagree")
        if expected_model_hash is not None:
            index.check_model(expected_model_hash, where="expected model")
        if "queries" in m:
            index.queries = _load_queries(index_dir, m, bits)
        if backend in ("faiss-ivf", "faiss-hnsw"):
            faiss_index = read_faiss(verify_file(index_dir, FAISS_FILE, m))
            if faiss_index.ntotal != count or faiss_index.d != bits:
                raise BinaryIndexError(f"{index_dir / FAISS_FILE}: holds {faiss_index.ntotal} codes of "
                                       f"{faiss_index.d} bits, manifest says {count} of {bits}")
            index._faiss = faiss_index
        else:
            index._build_backend()
        return index


def _load_queries(index_dir: Path, m: dict[str, Any], bits: int) -> StoredQueries:
    """The stored query codes of a manifest's ``queries`` entry, each file verified like the database's."""
    info = m["queries"]
    if not isinstance(info, dict) or not isinstance(info.get("modalities"), list) or "count" not in info:
        raise BinaryIndexError(f"{index_dir / MANIFEST}: 'queries' must hold 'count' and a 'modalities' list")
    count = int(info["count"])
    ids = load_array(index_dir, "query_ids", m)
    if ids.dtype != np.int64 or ids.shape != (count,):
        raise BinaryIndexError(f"{index_dir / 'query_ids.npy'}: {ids.dtype} {ids.shape}, expected ({count},) int64")
    codes = {}
    for mod in info["modalities"]:
        if not isinstance(mod, str) or not mod.isidentifier():  # it names a file in index_dir
            raise BinaryIndexError(f"{index_dir / MANIFEST}: 'queries' names a bad modality {mod!r}")
        words = load_array(index_dir, f"query_codes.{mod}", m)
        if words.dtype != WORD or words.shape != (count, n_words(bits)) or \
                (bits % 64 and (words[:, -1] >> np.uint64(bits % 64)).any()):
            raise BinaryIndexError(f"{index_dir / f'query_codes.{mod}.npy'}: {words.dtype} {words.shape} are not "
                                   f"{count} codes of {bits} bits")
        codes[mod] = Codes(words, bits)
    source = {k: v for k, v in info.items() if k not in ("count", "modalities")}
    return StoredQueries(ids, codes, source)
