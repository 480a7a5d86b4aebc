"""Binary index: exact search vs a brute-force numpy reference, FAISS agreement, verified save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitrieve.codes import Codes, CodesError
from bitrieve.index import BinaryIndex, BinaryIndexError, exact_topk
from bitrieve.index.exact import exact_radius
from bitrieve.index.scan import scan_radius, scan_topk


def _reference(q: np.ndarray, db: np.ndarray, k: int):
    """Obviously correct: full distance matrix, stable argsort (ties in database order)."""
    d = (q[:, None, :] != db[None, :, :]).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, 1)


@pytest.fixture
def faiss_one_thread():
    """FAISS's OpenMP threads spin-wait; on a shared 2-core machine one thread is much faster. Restored after."""
    pytest.importorskip("faiss")
    from bitrieve.index.faiss_backend import import_faiss

    faiss = import_faiss()  # applies the package's thread count once; the override below then stays
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield faiss
    faiss.omp_set_num_threads(before)


def _codes(rng, n, bits, p=0.5):
    return (rng.random((n, bits)) < p).astype(np.int8) * 2 - 1  # ±1, like the engine's sign


@pytest.mark.parametrize("bits", [1, 13, 64, 128, 200])
def test_exact_matches_bruteforce_with_stable_ties(bits):
    rng = np.random.default_rng(bits)
    # few distinct codes -> many exact ties, so the tie order is really exercised
    base = _codes(rng, 7, bits)
    db = np.concatenate([base[rng.integers(0, 7, 300)], _codes(rng, 100, bits)])
    q = np.concatenate([base, _codes(rng, 6, bits)])
    for k in (1, 5, 37, 400, 1000):
        pos, dist = exact_topk(Codes.pack(q), Codes.pack(db), k, chunk=4)  # chunk < Q: several kernel calls
        ref_pos, ref_dist = _reference(q, db, min(k, len(db)))
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(pos, ref_pos)


@pytest.mark.parametrize("bits", [13, 64, 128])
def test_exact_matches_bruteforce_on_many_blocks(bits):
    # 5,000 items = 20 blocks of 256: exercises the bound that skips whole blocks, with near-duplicate queries
    rng = np.random.default_rng(100 + bits)
    db = _codes(rng, 5000, bits)
    q = db[rng.integers(0, 5000, 12)] * np.where(rng.random((12, bits)) < 0.1, -1, 1)
    for k in (1, 10, 100):
        pos, dist = exact_topk(Codes.pack(q), Codes.pack(db), k)
        ref_pos, ref_dist = _reference(q, db, k)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(pos, ref_pos)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 600), bits=st.integers(1, 140), nq=st.integers(1, 5), k=st.integers(1, 700),
       levels=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_exact_property(n, bits, nq, k, levels, seed):
    # codes drawn from a few prototypes with noise: any mix of ties, sizes and k (also k > N)
    rng = np.random.default_rng(seed)
    protos = _codes(rng, levels, bits)
    flip = np.where(rng.random((n, bits)) < 0.05, -1, 1)
    db = protos[rng.integers(0, levels, n)] * flip
    q = protos[rng.integers(0, levels, nq)]
    ref_pos, ref_dist = _reference(q, db, min(k, n))
    for pos, dist in (exact_topk(Codes.pack(q), Codes.pack(db), k), scan_topk(Codes.pack(q), Codes.pack(db), k)):
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(pos, ref_pos)
    # radius: the numba kernel and the numpy scan against the distance matrix, sorted by (distance, position)
    r = int(rng.integers(0, bits + 1))
    full = (q[:, None, :] != db[None, :, :]).sum(-1)
    expect = [[(int(full[i, j]), j) for j in np.argsort(full[i], kind="stable") if full[i, j] <= r] for i in range(nq)]
    for offsets, pos, dist in (exact_radius(Codes.pack(q), Codes.pack(db), r),
                               scan_radius(Codes.pack(q), Codes.pack(db), r)):
        got = [list(zip(dist[offsets[i]:offsets[i + 1]].tolist(), pos[offsets[i]:offsets[i + 1]].tolist()))
               for i in range(nq)]
        assert got == expect


def test_index_search_scans_few_queries_and_uses_the_kernel_for_many(monkeypatch):
    """`BinaryIndex.search` answers alike on both sides of `scan.SCAN_CELLS` (numpy scan / numba kernel)."""
    from bitrieve.index import binary_index

    rng = np.random.default_rng(8)
    db, q = _codes(rng, 700, 70, p=0.9), _codes(rng, 6, 70, p=0.9)  # skewed bits: many ties
    index = BinaryIndex.build(db, np.arange(700) * 2)
    few, few_r = index.search(q, 50), index.radius_search(q, 20)
    monkeypatch.setattr(binary_index, "SCAN_CELLS", 0)
    many, many_r = index.search(q, 50), index.radius_search(q, 20)
    for a, b in ((few.ids, many.ids), (few.distances, many.distances), (few_r.offsets, many_r.offsets),
                 (few_r.ids, many_r.ids), (few_r.distances, many_r.distances)):
        np.testing.assert_array_equal(a, b)
    ref_pos, ref_dist = _reference(q, db, 50)
    np.testing.assert_array_equal(few.ids, ref_pos * 2)
    np.testing.assert_array_equal(few.distances, ref_dist)


def test_pack_roundtrip_and_input_forms():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2, (9, 70)).astype(np.uint8)
    p01, ppm, pbool = Codes.pack(b), Codes.pack(b.astype(np.float32) * 2 - 1), Codes.pack(b.astype(bool))
    np.testing.assert_array_equal(p01.unpack(signed=False), b)
    np.testing.assert_array_equal(p01.words, ppm.words)
    np.testing.assert_array_equal(p01.words, pbool.words)
    assert p01.words.shape == (9, 2) and p01.bits == 70
    # byte view = np.packbits little-endian, the layout FAISS reads
    np.testing.assert_array_equal(p01.to_bytes(), np.packbits(b, axis=1, bitorder="little"))
    # the index reads the one codes type of bitrieve.codes, and refuses non-binary codes with its validator
    with pytest.raises(CodesError, match=r"database codes: codes are not binary.*take the sign"):
        BinaryIndex.build(np.array([[0.3, -1.0]]), np.arange(1))


def test_index_search_returns_ids_and_checks_bits():
    rng = np.random.default_rng(1)
    db, q = _codes(rng, 50, 16), _codes(rng, 3, 16)
    ids = np.arange(1000, 1050)[::-1].copy()
    index = BinaryIndex.build(db, ids, meta={"model_hash": "abc"})
    res = index.search(q, k=5)
    ref_pos, ref_dist = _reference(q, db, 5)
    np.testing.assert_array_equal(res.ids, ids[ref_pos])
    np.testing.assert_array_equal(res.distances, ref_dist)
    with pytest.raises(BinaryIndexError, match="query codes have 17 bits, the index has 16"):
        index.search(_codes(rng, 2, 17), k=5)
    with pytest.raises(BinaryIndexError, match="not the model that encoded this index"):
        index.search(q, k=5, model_hash="other")
    with pytest.raises(BinaryIndexError, match="ids are not unique"):
        BinaryIndex.build(db, np.zeros(50, np.int64))
    with pytest.raises(BinaryIndexError, match=r"unknown build parameter\(s\) \['nprobe'\]"):
        BinaryIndex.build(db, ids, nprobe=3)


@pytest.mark.parametrize("bits", [8, 64, 128])
def test_faiss_flat_agrees_with_exact(bits, faiss_one_thread):
    rng = np.random.default_rng(bits)
    base = _codes(rng, 20, bits)
    db = np.concatenate([base[rng.integers(0, 20, 1500)], _codes(rng, 500, bits)])
    q = _codes(rng, 30, bits)
    ids = np.arange(len(db))
    k = 50
    ours = BinaryIndex.build(db, ids).search(q, k)
    theirs = BinaryIndex.build(db, ids, backend="faiss-flat").search(q, k)
    np.testing.assert_array_equal(theirs.distances, ours.distances)  # same distances, slot by slot
    for i in range(len(q)):
        # tie order may differ: the items strictly closer than the k-th distance must be the same set
        kth = ours.distances[i, -1]
        assert set(ours.ids[i][ours.distances[i] < kth]) == set(theirs.ids[i][theirs.distances[i] < kth])
        # and every returned item really is at the distance reported
        true = (q[i][None] != db[theirs.ids[i]]).sum(1)
        np.testing.assert_array_equal(true, theirs.distances[i])


def test_faiss_needs_multiple_of_8_bits():
    pytest.importorskip("faiss")
    with pytest.raises(BinaryIndexError, match="multiple of 8, got 13 bits"):
        BinaryIndex.build(np.ones((4, 13)), np.arange(4), backend="faiss-flat")


@pytest.mark.parametrize("backend", ["faiss-ivf", "faiss-hnsw"])
def test_faiss_approximate_backends_roundtrip(tmp_path, backend, faiss_one_thread):
    rng = np.random.default_rng(2)
    db, q = _codes(rng, 2000, 32), _codes(rng, 20, 32)
    index = BinaryIndex.build(db, np.arange(2000), backend=backend, nlist=8)
    res = index.search(q, 10, nprobe=8, ef_search=64)
    # reported distances are the true distances of the returned items
    for i in range(len(q)):
        ok = res.ids[i] >= 0
        np.testing.assert_array_equal((q[i][None] != db[res.ids[i][ok]]).sum(1), res.distances[i][ok])
    # IVF probing every list is exhaustive: same distances as exact search
    if backend == "faiss-ivf":
        np.testing.assert_array_equal(res.distances, BinaryIndex.build(db, np.arange(2000)).search(q, 10).distances)
    index.save(tmp_path / "idx")
    assert (tmp_path / "idx" / "faiss.index").is_file()
    again = BinaryIndex.load(tmp_path / "idx").search(q, 10, nprobe=8, ef_search=64)
    np.testing.assert_array_equal(again.ids, res.ids)
    np.testing.assert_array_equal(again.distances, res.distances)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    db, q = _codes(rng, 300, 70), _codes(rng, 4, 70)
    meta = {"model_hash": "f" * 64, "modality": "image"}
    index = BinaryIndex.build(db, np.arange(300) * 3, meta=meta)
    index.save(tmp_path / "idx")
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert files == ["codes.npy", "ids.npy", "manifest.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    loaded = BinaryIndex.load(tmp_path / "idx", expected_model_hash="f" * 64, expected_bits=70)
    assert loaded.meta == meta and loaded.bits == 70 and len(loaded) == 300
    a, b = index.search(q, 20), loaded.search(q, 20)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)
    mm = BinaryIndex.load(tmp_path / "idx", mmap=True).search(q, 20)
    np.testing.assert_array_equal(mm.ids, a.ids)
    # overwriting an index replaces it atomically
    BinaryIndex.build(db[:10], np.arange(10)).save(tmp_path / "idx")
    assert len(BinaryIndex.load(tmp_path / "idx")) == 10


def test_load_refuses_corruption_and_mismatches(tmp_path):
    rng = np.random.default_rng(4)
    idx_dir = tmp_path / "idx"
    BinaryIndex.build(_codes(rng, 100, 32), np.arange(100), meta={"model_hash": "a" * 64}).save(idx_dir)
    with pytest.raises(BinaryIndexError, match="expected 64 bits"):
        BinaryIndex.load(idx_dir, expected_bits=64)
    with pytest.raises(BinaryIndexError, match="not the model that encoded this index"):
        BinaryIndex.load(idx_dir, expected_model_hash="b" * 64)
    # flip one byte of the codes: checksum refuses it
    codes = idx_dir / "codes.npy"
    raw = bytearray(codes.read_bytes())
    raw[-1] ^= 0xFF
    codes.write_bytes(bytes(raw))
    with pytest.raises(BinaryIndexError, match=r"codes\.npy: checksum mismatch"):
        BinaryIndex.load(idx_dir)
    raw[-1] ^= 0xFF
    codes.write_bytes(bytes(raw))
    BinaryIndex.load(idx_dir)  # restored: loads again
    # an edited manifest field is caught by the manifest's own checksum
    manifest = json.loads((idx_dir / "manifest.json").read_text())
    manifest["bits"] = 80
    (idx_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BinaryIndexError, match="do not match its 'manifest_sha256'"):
        BinaryIndex.load(idx_dir)
    # a consistent manifest (re-sealed) that lies about the bit length is caught by the shape check
    from bitrieve.index.store import manifest_sha256

    manifest["manifest_sha256"] = manifest_sha256(manifest)
    (idx_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BinaryIndexError, match="does not fit 100 codes of 80 bits"):
        BinaryIndex.load(idx_dir)
    (idx_dir / "ids.npy").unlink()
    with pytest.raises(BinaryIndexError, match="ids.npy: missing"):
        BinaryIndex.load(idx_dir)
    with pytest.raises(BinaryIndexError, match="not a bitrieve index"):
        BinaryIndex.load(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(BinaryIndexError, match="is not a bitrieve index directory.*refusing to delete it"):
        BinaryIndex.build(_codes(rng, 5, 8), np.arange(5)).save(tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "x"


def test_index_without_model_hash_refuses_a_model_checked_query():
    index = BinaryIndex.build(np.ones((3, 8)), np.arange(3))
    with pytest.raises(BinaryIndexError, match="records no model hash"):
        index.search(np.ones((1, 8)), 2, model_hash="a" * 64)


def _radius_reference(q: np.ndarray, db: np.ndarray, r: int):
    """Obviously correct: the full distance matrix; per query the items with distance <= r, stably sorted by
    distance (ties in database order)."""
    d = (q[:, None, :] != db[None, :, :]).sum(-1)
    out = []
    for row in d:
        hits = np.flatnonzero(row <= r)
        hits = hits[np.argsort(row[hits], kind="stable")]
        out.append((hits, row[hits]))
    return out


@pytest.mark.parametrize("bits", [1, 13, 64, 128, 200])
def test_radius_search_matches_bruteforce(bits):
    rng = np.random.default_rng(7 + bits)
    base = _codes(rng, 7, bits)  # few distinct codes: many items at equal distances
    db = np.concatenate([base[rng.integers(0, 7, 300)], _codes(rng, 600, bits)])  # 900 items = 4 blocks of 256
    q = np.concatenate([base, _codes(rng, 5, bits), db[:3] * np.where(rng.random((3, bits)) < 0.05, -1, 1)])
    ids = rng.permutation(10_000)[: len(db)]  # ids are not positions
    index = BinaryIndex.build(db, ids)
    for r in sorted({0, 1, 3, bits // 2, bits}):
        got = index.radius_search(q, r, chunk=4)  # chunk < Q: several kernel calls
        ref = _radius_reference(q, db, r)
        assert len(got) == len(q)
        for i, (pos, dist) in enumerate(ref):
            got_ids, got_dist = got.query(i)
            np.testing.assert_array_equal(got_ids, ids[pos])
            np.testing.assert_array_equal(got_dist, dist)
    # the top-k search agrees with the radius search where both apply: the k nearest are the first k hits
    full = index.radius_search(q, bits)
    top = index.search(q, 50)
    for i in range(len(q)):
        np.testing.assert_array_equal(full.query(i)[0][:50], top.ids[i])


def test_radius_search_limits_and_errors():
    rng = np.random.default_rng(0)
    db = _codes(rng, 100, 16)
    index = BinaryIndex.build(db, np.arange(100))
    with pytest.raises(BinaryIndexError, match="exceed max_results"):
        index.radius_search(db[:10], 16, max_results=999)  # 10 queries x all 100 items
    with pytest.raises(BinaryIndexError, match="radius must be >= 0"):
        index.radius_search(db[:1], -1)
    with pytest.raises(BinaryIndexError, match="query codes have 8 bits, the index has 16"):
        index.radius_search(_codes(rng, 1, 8), 2)
    empty = index.radius_search(db[:0], 3)
    assert len(empty) == 0 and empty.ids.shape == (0,)


@pytest.mark.parametrize("backend", ["exact", "faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_add_equals_building_everything_at_once(tmp_path, backend, request):
    if backend != "exact":
        request.getfixturevalue("faiss_one_thread")
    rng = np.random.default_rng(3)
    codes = _codes(rng, 1200, 64)
    ids = rng.permutation(5000)[:1200]
    first = BinaryIndex.build(codes[:900], ids[:900], {"model_hash": "m"}, backend=backend, seed=0)
    bigger = first.add(codes[900:], ids[900:], model_hash="m", source={"split": "query"})
    assert len(first) == 900 and len(bigger) == 1200  # the original is unchanged
    whole = BinaryIndex.build(codes, ids, {"model_hash": "m"})
    np.testing.assert_array_equal(bigger.codes.words, whole.codes.words)
    np.testing.assert_array_equal(bigger.ids, whole.ids)
    assert bigger.meta["added"] == [{"split": "query", "count": 300}]
    q = codes[rng.integers(0, 1200, 20)]
    res = bigger.search(q, 10, nprobe=10_000, ef_search=2000)
    ref = whole.search(q, 10)
    np.testing.assert_array_equal(res.distances, ref.distances)  # approximate backends: probed exhaustively here
    bigger.save(tmp_path / "idx")
    loaded = BinaryIndex.load(tmp_path / "idx", expected_model_hash="m")
    assert len(loaded) == 1200 and loaded.meta["added"][0]["count"] == 300
    np.testing.assert_array_equal(loaded.search(q, 10, nprobe=10_000, ef_search=2000).distances, ref.distances)


def test_add_refuses_what_would_break_the_index():
    rng = np.random.default_rng(4)
    index = BinaryIndex.build(_codes(rng, 50, 32), np.arange(50), {"model_hash": "m"})
    with pytest.raises(BinaryIndexError, match="already in the index"):
        index.add(_codes(rng, 3, 32), [49, 50, 51])
    with pytest.raises(BinaryIndexError, match="not unique"):
        index.add(_codes(rng, 2, 32), [60, 60])
    with pytest.raises(BinaryIndexError, match="33 bits, the index has 32"):
        index.add(_codes(rng, 1, 33), [70])
    with pytest.raises(BinaryIndexError, match="not the model that encoded this index"):
        index.add(_codes(rng, 1, 32), [70], model_hash="other")
    with pytest.raises(BinaryIndexError, match="one per code"):
        index.add(_codes(rng, 2, 32), [70])


def test_stored_query_codes_roundtrip_lookup_and_tampering(tmp_path):
    """An index's stored query codes are saved, sealed and verified like its database; `index add` keeps them."""
    from bitrieve.index.binary_index import StoredQueries
    from bitrieve.index.store import manifest_sha256

    rng = np.random.default_rng(5)
    text, image = _codes(rng, 6, 70), _codes(rng, 6, 70)
    qids = np.array([40, 10, 30, 10, 20, 50])  # id 10 twice: its first row is the one looked up
    index = BinaryIndex.build(_codes(rng, 50, 70), np.arange(50), meta={"model_hash": "a" * 64})
    index.queries = StoredQueries(qids, {"text": Codes.pack(text), "image": Codes.pack(image)}, {"split": "query"})
    index.save(tmp_path / "idx")
    loaded = BinaryIndex.load(tmp_path / "idx").add(_codes(rng, 2, 70), [60, 61], model_hash="a" * 64)
    loaded.save(tmp_path / "idx")
    q = BinaryIndex.load(tmp_path / "idx").queries
    assert q.source == {"split": "query"} and q.ids.tolist() == qids.tolist() and sorted(q.codes) == ["image", "text"]
    got = q.lookup([10, 50, 40], "text")
    np.testing.assert_array_equal(got.unpack(), text[[1, 5, 0]])
    assert q.lookup([10, 11], "text") is None and q.lookup([10], "audio") is None

    for name in ("query_ids.npy", "query_codes.text.npy"):
        f = tmp_path / "idx" / name
        raw = bytearray(f.read_bytes())
        raw[-1] ^= 0x01
        f.write_bytes(bytes(raw))
        with pytest.raises(BinaryIndexError, match=rf"{name}: checksum mismatch"):
            BinaryIndex.load(tmp_path / "idx")
        raw[-1] ^= 0x01
        f.write_bytes(bytes(raw))
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    manifest["queries"]["count"] = 5  # edited: the seal refuses it; re-sealed: the shape check does
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BinaryIndexError, match="do not match its 'manifest_sha256'"):
        BinaryIndex.load(tmp_path / "idx")
    manifest["manifest_sha256"] = manifest_sha256(manifest)
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BinaryIndexError, match=r"query_ids\.npy: int64 \(6,\), expected \(5,\)"):
        BinaryIndex.load(tmp_path / "idx")
    index.queries = StoredQueries(qids, {"text": Codes.pack(_codes(rng, 6, 64))}, {})  # not this index's bits
    with pytest.raises(BinaryIndexError, match="must be 6 codes of 70 bits"):
        index.save(tmp_path / "other")
