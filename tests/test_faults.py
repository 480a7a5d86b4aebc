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
from bitrieve.index.codes import BinaryIndexError

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
        for f in d.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
