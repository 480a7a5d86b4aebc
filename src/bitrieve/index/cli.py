"""``bitrieve index build|info`` and ``bitrieve search``: a database encoded by a trained run, searched by Hamming."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from bitrieve.index import model as _model
from bitrieve.index.binary_index import BACKENDS, BinaryIndex, StoredQueries
from bitrieve.errors import BinaryIndexError
from bitrieve.index.faiss_backend import check_bits
from bitrieve.atomic import RefusedToReplace, check_free_space, check_replaceable, check_writable
from bitrieve.index.store import is_index_dir, read_manifest
from bitrieve.options import int_option

QUERY_SPLIT_ORDER = ("query", "retrieval", "train")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build or inspect a binary index of hash codes")
    verbs = p.add_subparsers(dest="index_command", metavar="VERB")
    b = verbs.add_parser("build", help="encode a database split with a trained run and index its codes")
    b.add_argument("--run", required=True, help="run directory (config.yaml + checkpoint.safetensors)")
    b.add_argument("--data", default=None, help="'wiki' or a canonical store directory (default: the run's data)")
    b.add_argument("--modality", required=True, choices=["image", "text"], help="which modality to encode")
    b.add_argument("--split", default="retrieval", help="split to index (default: retrieval)")
    b.add_argument("--out", required=True, help="index directory to write (replaced atomically)")
    b.add_argument("--backend", default="exact", choices=BACKENDS,
                   help="exact (ours, stable ties) | faiss-flat (exact distances) | faiss-ivf | faiss-hnsw (approx.)")
    b.add_argument("--chunk", type=int_option(1), default=8192, help="items encoded per chunk (bounds memory)")
    b.add_argument("--nlist", type=int_option(1), default=None, help="faiss-ivf: number of lists (default ~4*sqrt(N))")
    b.add_argument("--hnsw-m", type=int_option(2, 512), default=32, help="faiss-hnsw: links per node")
    b.add_argument("--device", default="cpu", help="device for encoding (cpu, cuda, cuda:N)")
    b.set_defaults(func=_reported(_build))
    a = verbs.add_parser("add", help="append a split's items to an index (encoded by the run that built it)",
                         description="Encode SPLIT of DATA with the run that built the index (its model hash must "
                                     "match), append the codes under the items' ids (which must be new), and "
                                     "rewrite the index atomically; the result is re-read and verified.")
    a.add_argument("index_dir")
    a.add_argument("--run", required=True, help="run directory whose model built the index")
    a.add_argument("--split", required=True, help="split whose items are appended, e.g. query")
    a.add_argument("--data", default=None, help="'wiki' or a canonical store directory (default: the index's data)")
    a.add_argument("--modality", default=None, choices=["image", "text"],
                   help="modality to encode (default: the index's)")
    a.add_argument("--chunk", type=int_option(1), default=8192, help="items encoded per chunk (bounds memory)")
    a.add_argument("--device", default="cpu", help="device for encoding (cpu, cuda, cuda:N)")
    a.set_defaults(func=_reported(_add))
    i = verbs.add_parser("info", help="print an index's manifest (and verify its files)")
    i.add_argument("index_dir")
    i.set_defaults(func=_reported(_info))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = sub.add_parser("search", help="top-k Hamming search of an index with queries encoded by the same run")
    s.add_argument("index_dir")
    s.add_argument("--run", required=True, help="run directory whose model built the index")
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--ids", help="comma-separated item ids to use as queries (looked up in the data's "
                                 "query, retrieval, then train split)")
    q.add_argument("--features", help=".npy file of query inputs (N, ...) or one row (...)")
    s.add_argument("--data", default=None, help="data for --ids (default: the data the index was built from)")
    s.add_argument("--modality", default=None, choices=["image", "text"],
                   help="query modality (default: the index's modality; the other one for cross-modal search)")
    s.add_argument("-k", type=int_option(1), default=None, help="results per query (default 10)")
    s.add_argument("--radius", type=int_option(0), default=None, metavar="R",
                   help="instead of top-k: every item within Hamming distance R (exact, any backend)")
    s.add_argument("--no-labels", action="store_true",
                   help="do not load the data to show each item's labels (or caption)")
    s.add_argument("--nprobe", type=int_option(1), default=None, help="faiss-ivf: lists probed")
    s.add_argument("--ef-search", type=int_option(1), default=None, help="faiss-hnsw: search breadth")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--device", default="cpu", help="device for encoding the queries")
    s.set_defaults(func=_reported(_search))


def _fail(e: Exception) -> int:
    print(f"bitrieve: error: {e}", file=sys.stderr)
    return 2


def _reported(command):
    """An index command whose BinaryIndexError becomes one ``bitrieve: error: ...`` line and exit status 2."""

    @functools.wraps(command)
    def run(args) -> int:
        try:
            return command(args)
        except BinaryIndexError as e:
            return _fail(e)

    return run


def _build(args) -> int:
    from bitrieve.console import status

    out = Path(args.out)
    try:  # before loading the model and encoding: the same rule the save applies at the end
        check_replaceable(out, is_index_dir, "bitrieve index directory")
    except RefusedToReplace as e:
        raise BinaryIndexError(str(e)) from None
    check_writable(out.parent, "index", error=BinaryIndexError)
    status(f"index build: loading the run {args.run} (config, data, checkpoint)")
    cfg, method = _model.load_run_model(args.run, device=args.device, loader=_load)
    if args.backend != "exact":
        check_bits(int(method.bits), args.backend)  # before spending time on encoding
    spec = _data_spec(args, cfg)
    data = _load(spec)  # the store opened once per command; only this split's modality is read
    split = data[args.split]
    if args.modality not in split.inputs:
        raise BinaryIndexError(f"data '{spec}' split '{args.split}' has no modality '{args.modality}' "
                               f"(has {sorted(split.inputs)})")
    if args.modality not in getattr(method, "modalities", (args.modality,)):
        raise BinaryIndexError(f"method '{cfg.method}' does not encode modality '{args.modality}'")
    n = len(split)
    check_free_space(out.parent, n * (8 * ((int(method.bits) + 63) // 64) + 8) * (2 if args.backend != "exact" else 1),
                     "index", error=BinaryIndexError)
    from bitrieve.codes.encode import encode_codes

    t0 = time.perf_counter()
    codes = encode_codes(method, split.inputs[args.modality], args.modality, batch_size=args.chunk,
                         device=args.device, progress=True)
    queries = _encode_queries(args, method, data, spec)
    t_enc = time.perf_counter() - t0
    meta = {"model_hash": _model.model_hash(method), "run": str(Path(args.run).resolve()), "method": cfg.method,
            "bits": int(method.bits), "config_sha256": cfg.sha256(),
            "data": str(Path(spec).resolve()) if spec != "wiki" else "wiki",
            "dataset": data.card.get("name"), "split": args.split, "modality": args.modality}
    params = {"nlist": args.nlist} if args.backend == "faiss-ivf" else {}
    if args.backend == "faiss-hnsw":
        params["hnsw_m"] = args.hnsw_m
    t0 = time.perf_counter()
    index = BinaryIndex.build(codes, split.ids, meta, backend=args.backend, progress=True, **params)
    index.queries = queries
    index.save(args.out)
    t_build = time.perf_counter() - t0
    print(f"indexed {len(index)} {args.modality} items of '{spec}'/{args.split} as {index.bits}-bit codes "
          f"({args.backend}) -> {args.out}  [encode {t_enc:.1f} s, build+save {t_build:.1f} s]"
          + (f"; stored the {queries.source['split']} split's {' and '.join(sorted(queries.codes))} codes "
             f"({len(queries.ids)} items) for searches by id" if queries is not None else ""))
    return 0


def _encode_queries(args, method, data, spec: str) -> StoredQueries | None:
    """The codes of the data's query split in every modality the model encodes, so that ``search --ids`` of these
    items is a table lookup instead of loading the model (the query split is the first one `_lookup_ids` searches,
    so a stored row is the row the model path would encode). Small: 2,000 items for NUS-WIDE. ``source`` records
    what must be unchanged for the table to hold what the model would encode now (`_stored_query_codes`)."""
    from bitrieve.codes.encode import encode_codes

    name = QUERY_SPLIT_ORDER[0]
    run = _model.run_fingerprint(args.run)
    if name not in data.splits or run is None:
        return None
    split = data[name]
    mods = [m for m in getattr(method, "modalities", (args.modality,)) if m in split.inputs]
    codes = {m: encode_codes(method, split.inputs[m], m, batch_size=args.chunk, device=args.device) for m in mods}
    source = {"split": name, "data_sha256": _data_sha256(spec), "run_fingerprint": run, "device": args.device}
    return StoredQueries(np.asarray(split.ids, np.int64), codes, source) if codes else None


def _data_sha256(spec: str) -> str | None:
    """What identifies the data's content: the sha256 of a store's card.json (which lists every file's sha256), or of
    the embedded Wiki file."""
    from bitrieve.data.wiki import EMBEDDED_WIKI, sha256_file

    path = EMBEDDED_WIKI if spec == "wiki" else Path(spec) / "card.json"
    return sha256_file(path) if path.is_file() else None


def _stored_query_codes(args, index: BinaryIndex, wanted: list[int], modality: str, spec: str | None):
    """``(codes, None)`` of ``--ids`` queries from the index's stored query codes, or ``(None, why not)``: then the
    model encodes them. The table answers only where the model path would give the same codes: the same run (its
    config and checkpoint, `model.run_fingerprint`), the same data (the ids are looked up in it), the same device,
    every id in the table."""
    q = index.queries
    if q is None:
        return None, "the index stores no query codes (built before bitrieve stored them; rebuild it to search by id " \
                     "without loading the model)"
    if modality not in q.codes:
        return None, f"the index stores no {modality} query codes"
    data = _data_sha256(spec) if spec is not None else None
    if data is None or q.source.get("data_sha256") != data:
        return None, f"the data '{spec}' is not the data whose query codes the index stores"
    if q.source.get("device") != args.device:
        return None, f"the stored query codes were encoded on {q.source.get('device')}, not {args.device}"
    if q.source.get("run_fingerprint") != _model.run_fingerprint(args.run):
        return None, f"the files of run {args.run} differ from those of the run that built the index"
    codes = q.lookup(wanted, modality)
    if codes is None:
        return None, f"an id is not in the stored {q.source.get('split')} split"
    return codes, None


def _info(args) -> int:
    index = BinaryIndex.load(args.index_dir)  # verifies every checksum
    m = read_manifest(args.index_dir)
    print(json.dumps({k: v for k, v in m.items() if k != "files"}, indent=2, sort_keys=True))
    print(f"{len(index)} items, {index.bits} bits, backend {index.backend}; manifest and files verified: "
          f"{', '.join(sorted(m['files']))}")
    return 0


def _add(args) -> int:
    from bitrieve.console import status

    status(f"index add: verifying {args.index_dir} and loading the run {args.run}")
    index = BinaryIndex.load(args.index_dir)  # every checksum verified before anything changes
    cfg, method = _model.load_run_model(args.run, device=args.device, loader=_load)
    h = _model.model_hash(method)
    index.check_model(h, where=f"run {args.run}")
    spec = _data_spec(args, cfg, index)
    modality = args.modality or index.meta.get("modality")
    if modality is None:
        raise BinaryIndexError(f"{args.index_dir}: the index records no modality; pass --modality")
    data = _load(spec)
    if args.split not in data.splits:
        raise BinaryIndexError(f"data '{spec}' has no split '{args.split}' (has {', '.join(data.splits)})")
    split = data[args.split]
    if modality not in split.inputs:
        raise BinaryIndexError(f"data '{spec}' split '{args.split}' has no modality '{modality}' "
                               f"(has {sorted(split.inputs)})")
    from bitrieve.codes.encode import encode_codes

    codes = encode_codes(method, split.inputs[modality], modality, batch_size=args.chunk, device=args.device,
                         progress=True)
    before = len(index)
    source = {"data": str(Path(spec).resolve()) if spec != "wiki" else "wiki", "split": args.split,
              "modality": modality}
    bigger = index.add(codes, split.ids, model_hash=h, source=source)
    bigger.save(args.index_dir)
    again = BinaryIndex.load(args.index_dir, expected_model_hash=h, expected_bits=index.bits)  # verify what was written
    if len(again) != before + len(split) or not np.array_equal(again.ids[before:], split.ids):
        raise BinaryIndexError(f"{args.index_dir}: re-reading the written index gave {len(again)} items, expected "
                               f"{before + len(split)}")
    print(f"added {len(split)} {modality} items of '{spec}'/{args.split} to {args.index_dir}: {before} -> "
          f"{len(again)} items, files verified")
    return 0


def item_describer(data):
    """id -> its label names (or its caption, for caption data), looked up in every split of ``data``."""
    names = data.card.get("label_names") or []
    captions = any("caption" in (s.extras or {}) for s in data.splits.values())
    order = [s for s in QUERY_SPLIT_ORDER if s in data.splits] + [s for s in data.splits if s not in QUERY_SPLIT_ORDER]
    # per split its ids sorted (stably: a repeated id finds its first row), searched per item: a dict of every id
    # took 0.15-0.3 s of a search on NUS-WIDE's 186,577 items, which shows a few dozen of them
    sorted_ids = []
    for name in order:
        ids = np.asarray(data.splits[name].ids)
        rows = np.argsort(ids, kind="stable")
        sorted_ids.append((name, ids[rows], rows))

    def where(item: int) -> tuple[str, int] | None:
        for name, ids, rows in sorted_ids:  # the first split in `order` that holds the id
            i = int(np.searchsorted(ids, item))
            if i < len(ids) and ids[i] == item:
                return name, int(rows[i])
        return None

    def describe(item: int) -> str:
        hit = where(int(item))
        if hit is None:
            return "?"
        split = data.splits[hit[0]]
        caption = (split.extras or {}).get("caption")
        if caption is not None:
            text = " ".join(str(caption[hit[1]]).split())
            return text if len(text) <= 70 else text[:69] + "…"
        cols = np.flatnonzero(split.labels[hit[1]])
        return ", ".join(str(names[j]) if j < len(names) else f"label {j}" for j in cols) or "(no label)"

    describe.header = "caption" if captions else "labels"
    return describe


def _lookup_ids(data, wanted: list[int], modality: str, spec: str) -> np.ndarray:
    order = [s for s in QUERY_SPLIT_ORDER if s in data.splits] + [s for s in data.splits if s not in QUERY_SPLIT_ORDER]
    rows = []
    for item in wanted:
        for name in order:
            hit = np.flatnonzero(data.splits[name].ids == item)
            if hit.size:
                split = data.splits[name]
                if modality not in split.inputs:
                    raise BinaryIndexError(f"data '{spec}' has no modality '{modality}'")
                rows.append(split.inputs[modality][hit[0]])
                break
        else:
            raise BinaryIndexError(f"id {item} is in no split of data '{spec}' ({', '.join(order)})")
    return np.stack(rows)


def query_features(path: Path, method, modality: str, run: str) -> np.ndarray:
    """Query inputs from a ``.npy`` file, checked before encoding: a plain numeric array, (N, *input shape) or one
    row (*input shape) of the run's ``modality`` inputs, every value finite. Errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"features file not found: {path}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BinaryIndexError(f"{path}: not a plain .npy array ({e})") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise BinaryIndexError(f"{path}: holds {getattr(x, 'dtype', type(x).__name__)} values, expected numbers")
    shape = tuple(getattr(getattr(method, "info", None), "input_shapes", {}).get(modality, x.shape[1:]))
    if x.shape == shape:
        x = x[None]  # one query
    if x.shape[1:] != shape or x.shape[0] == 0:
        want = ", ".join(str(d) for d in shape)
        raise BinaryIndexError(f"{path}: shape {x.shape}, expected (N, {want}) or one row ({want}): the {modality} "
                               f"inputs of run {run}")
    if x.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))
        if bad.size:
            shown = ", ".join(str(r) for r in bad[:10]) + (", ..." if bad.size > 10 else "")
            raise BinaryIndexError(f"{path}: NaN/inf values in {bad.size} of {len(x)} rows (rows {shown}); codes of "
                                   "such rows are meaningless")
    return x


def _search(args) -> int:
    from bitrieve.console import status

    if args.k is not None and args.radius is not None:
        raise BinaryIndexError("give -k (top-k search) or --radius (every item within a Hamming distance), not both")
    k = 10 if args.k is None else args.k  # -k >= 1, --radius >= 0, --chunk >= 1: checked by the parser (options.py)
    status(f"search: loading the index {args.index_dir}")
    index = BinaryIndex.load(args.index_dir)
    modality = args.modality or index.meta.get("modality")
    if modality is None:
        raise BinaryIndexError(f"{args.index_dir}: the index records no modality; pass --modality")
    q, spec, wanted = None, _data_spec(args, None, index), None
    if not args.features:
        try:
            wanted = [int(t) for t in args.ids.split(",") if t.strip()]
        except ValueError:
            raise BinaryIndexError(f"--ids expects comma-separated integers, got '{args.ids}'") from None
        if not wanted:
            raise BinaryIndexError("--ids is empty")
        names = [f"id {i}" for i in wanted]
        q, why = _stored_query_codes(args, index, wanted, modality, spec)
        if q is None:
            status(f"search: encoding the queries with the run's model: {why}")
    searching = f"searching {len(index):,} items" + (f" within Hamming distance {args.radius}" if args.radius
                                                     is not None else f" for the top {k}")
    if q is None:  # --features, or ids the index stores no codes for: the run's model encodes the queries
        status(f"search: loading the run {args.run} (config, data, checkpoint)")
        cfg, method = _model.load_run_model(args.run, device=args.device, loader=_load)
        index.check_model(_model.model_hash(method), where=f"run {args.run}")
        spec = _data_spec(args, cfg, index)
        if args.features:
            path = Path(args.features)
            x = query_features(path, method, modality, args.run)
            names = [f"{path.name}[{i}]" for i in range(x.shape[0])]
        else:
            x = _lookup_ids(_load(spec), wanted, modality, spec)
        status(f"search: encoding {len(x)} {modality} quer{'y' if len(x) == 1 else 'ies'} and {searching}")
        from bitrieve.codes.encode import encode_codes

        q = encode_codes(method, x, modality, device=args.device, progress=len(x) > 100_000)
    else:
        status(f"search: {len(q)} {modality} quer{'y' if len(q) == 1 else 'ies'} by id, codes stored in the index "
               f"(no model loaded); {searching}")
    if args.radius is not None:
        hits = index.radius_search(q, args.radius)
        per_query = [hits.query(i) for i in range(len(hits))]
    else:
        res = index.search(q, k, nprobe=args.nprobe, ef_search=args.ef_search)
        per_query = list(zip(res.ids, res.distances))
    describe = _describer(args, spec)
    query_text = [describe(i) for i in wanted] if describe and args.ids else [None] * len(names)
    if args.json:
        print(json.dumps([{"query": lab, "modality": modality, **({"radius": args.radius} if args.radius is not None
                                                                   else {}),
                           **({"query_labels": qt} if qt is not None else {}),
                           "ids": r.tolist(), "hamming": d.tolist(),
                           **({"labels": [describe(i) for i in r]} if describe else {})}
                          for lab, qt, (r, d) in zip(names, query_text, per_query)]))
        return 0
    db_mod = index.meta.get("modality", "?")
    what = f"within Hamming distance {args.radius}" if args.radius is not None else f"top {k}"
    for lab, qt, (r, d) in zip(names, query_text, per_query):
        print(f"query {lab} ({modality} -> {db_mod}, {index.bits} bits, {index.backend}, {what})"
              + (f": {qt}" if qt else "") + (f" - {len(r)} item{'s' if len(r) != 1 else ''}"
                                             if args.radius is not None else ""))
        print(f"  {'rank':>4}  {'id':>10}  {'hamming':>7}" + (f"  {describe.header}" if describe else ""))
        for rank, (item, dist) in enumerate(zip(r, d), 1):
            print(f"  {rank:>4}  {item:>10}  {dist:>7}" + (f"  {describe(item)}" if describe else ""))
    return 0


def _data_spec(args, cfg, index: BinaryIndex | None = None) -> str | None:
    """``--data``; else the data the index recorded, where it is found from here; else the run's (``load_run`` found
    it from any working directory: engine/runs.py ``resolve_run_data``); None if that is needed but ``cfg`` is None."""
    if args.data:
        return args.data
    recorded = index.meta.get("data") if index is not None else None
    if recorded and (recorded == "wiki" or Path(recorded).is_dir()):
        return recorded
    return cfg.data if cfg is not None else None


def _load(spec: str):
    """The data of a spec, opened once per command: the run's model, queries by id and the items' labels all come
    from the same (lazily opened) store, whichever way its path is spelled."""
    if spec == "wiki" or not Path(spec).is_dir():
        return _load_resolved(spec, None)
    card = Path(spec) / "card.json"
    st = card.stat() if card.is_file() else None  # a store replaced on disk is opened again
    return _load_resolved(str(Path(spec).resolve()), st and (st.st_ino, st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=2)
def _load_resolved(spec: str, _stamp):
    from bitrieve.data import load_data

    return load_data(spec)


def _describer(args, spec: str | None):
    """Labels/captions of the index's items (and of --ids queries), from the data the index was built from (``spec``,
    `_data_spec`); None with --no-labels or when that data is not here (said on stderr)."""
    if args.no_labels or spec is None:
        return None
    try:
        return item_describer(_load(spec))
    except (OSError, ValueError) as e:
        print(f"bitrieve: no labels shown: data '{spec}' could not be loaded ({e})", file=sys.stderr)
        return None
