"""Atomic writes for the whole package (a temp file or directory beside the target + ``os.replace``), so a crash
never leaves half a checkpoint, table, figure, dataset store or index."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from bitrieve.errors import BitrieveError


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the user's umask (mkstemp/mkdtemp use owner-only modes,
    which would make results unreadable to the rest of a lab)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


# targets whose writing a Ctrl-C stopped (their partial output was removed; the target is as before): an
# interrupted command names them (cli.main)
INTERRUPTED: list[Path] = []


@contextlib.contextmanager
def being_written(dest: str | Path) -> Iterator[None]:
    """A Ctrl-C inside the block records ``dest`` in :data:`INTERRUPTED`."""
    try:
        yield
    except KeyboardInterrupt:
        if Path(dest) not in INTERRUPTED:
            INTERRUPTED.append(Path(dest))
        raise


def hidden_stem(name: str) -> str:
    """The part of ``name`` used in the hidden temp, lock and old-copy names beside it (``.NAME.partial-*``): names
    up to 200 characters as they are; a longer one (legal up to 255) shortened with a hash of the whole, so the
    hidden names stay within the file-system limit and stay unique."""
    if len(name) <= 200:
        return name
    import hashlib

    return name[:180] + "~" + hashlib.sha256(name.encode()).hexdigest()[:10]


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent directories; fsynced before the rename, as
    `write_bytes_atomic` (run files beside a checkpoint must survive what the checkpoint survives)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_default(o: Any) -> Any:
    """JSON for the values run state holds besides plain numbers: numpy / torch scalars (``.item()``) and sets."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path: str | Path, obj: Any, *, indent: int = 2,
                      default: Callable[[Any], Any] = json_default) -> Path:
    """``obj`` as JSON (``indent``, a final newline) written with `write_text_atomic`."""
    import json

    return write_text_atomic(path, json.dumps(obj, indent=indent, default=default) + "\n")


def write_with_atomic(path: str | Path, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temp file onto ``path``; the temp file keeps the suffix
    (matplotlib picks the format from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{hidden_stem(path.stem)}.", suffix=path.suffix[:20], dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically and fsync it before the rename (checkpoints must survive a power cut or SIGKILL)."""

    def writer(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return write_with_atomic(path, writer)


class RefusedToReplace(BitrieveError, ValueError):
    """A directory that ``--overwrite`` (or a save) would replace is not ours to delete."""


class LockedError(BitrieveError, RuntimeError):
    """Another process holds the lock of the target being written."""


class OutputError(BitrieveError, ValueError):
    """An output path that cannot be written (permissions, a file in the way, not enough free space)."""


def _existing_ancestor(path: Path) -> Path:
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_writable(path: str | Path, what: str = "output", error: type[Exception] = OutputError) -> None:
    """Fail before any expensive work if ``path`` (a directory to write in, or to create) cannot be written: an
    existing ``path`` must be a writable directory; otherwise its nearest existing ancestor must be writable."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise error(f"{path}: exists and is not a directory (expected the {what} directory)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise error(f"{path}: cannot write the {what} here (the directory is not writable)")
        return
    parent = _existing_ancestor(path.parent)
    if not parent.is_dir():
        raise error(f"{path}: cannot create the {what} ({parent} is a file, not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{path}: cannot write the {what} here ({parent} is not writable)")


def check_free_space(path: str | Path, need_bytes: int, what: str = "output",
                     error: type[Exception] = OutputError) -> None:
    """Fail before the work if the file system of ``path`` has less than ``need_bytes`` free (an estimate of the
    output's size; 5% and 16 MiB of headroom are added)."""
    import shutil

    where = _existing_ancestor(Path(path))
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return  # cannot tell: the write itself will say
    need = int(need_bytes * 1.05) + (16 << 20)
    if free < need:
        raise error(f"{path}: not enough free space for the {what} ({free / 2**20:,.0f} MiB free on {where}, about "
                    f"{need / 2**20:,.0f} MiB needed); free some space or choose another path")


def check_replaceable(dest: str | Path, is_ours: Callable[[Path], bool], what: str) -> None:
    """The one rule for every command that replaces a directory (store, index, run directory).

    ``dest`` may be replaced only if it does not exist, is an empty directory, or ``is_ours(dest)`` recognises it as
    a ``what`` written by bitrieve. Never the current directory or one of its parents, never the file-system root or
    the home directory, never a file or a symbolic link. Raises `RefusedToReplace` saying why; deletes nothing.
    """
    dest = Path(dest)
    if dest.is_symlink():
        raise RefusedToReplace(f"{dest}: is a symbolic link; refusing to replace it (give the real directory)")
    if not dest.exists():
        return
    resolved = dest.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise RefusedToReplace(f"{dest}: is the current directory or one of its parents; refusing to replace it")
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise RefusedToReplace(f"{dest}: is the file-system root or the home directory; refusing to replace it")
    if not dest.is_dir():
        raise RefusedToReplace(f"{dest}: exists and is a file, not a {what}; refusing to replace it")
    if not any(dest.iterdir()):
        return
    if not is_ours(dest):
        raise RefusedToReplace(f"{dest}: exists and is not a {what} (overwriting replaces only a {what} that bitrieve "
                               "wrote); refusing to delete it - choose another path or remove it yourself")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(target: str | Path, what: str = "target") -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``target`` for the block (lock file ``.NAME.lock`` beside it, holding
    the owner's pid). A second writer fails at once with `LockedError` naming the holder's pid. The lock file is
    removed on release; acquiring re-checks that the file is still the one locked (no race with that removal)."""
    import fcntl

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{hidden_stem(target.name)}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise LockedError(f"{target}: another bitrieve process (pid {holder}) is writing this {what}; wait for it "
                              f"to finish (lock file {lock})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield lock
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_siblings(dest: str | Path, tags: tuple[str, ...] = ("partial", "tmp", "old")) -> list[Path]:
    """Remove ``.NAME.<tag>-*`` directories beside ``dest`` that earlier, interrupted writes left behind. Call it
    only while holding `exclusive_lock` on ``dest`` (so none of them belongs to a live writer)."""
    dest = Path(dest)
    removed = []
    if not dest.parent.is_dir():
        return removed
    for tag in tags:
        for p in dest.parent.glob(f".{glob.escape(hidden_stem(dest.name))}.{tag}-*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_directory(dest: str | Path, tag: str = "partial", *, is_ours: Callable[[Path], bool] | None = None,
                     what: str = "directory") -> Iterator[Path]:
    """Yield a new hidden directory ``.<name>.<tag>-*`` beside ``dest`` to build in; when the block ends normally it
    replaces ``dest`` (an existing ``dest`` is moved aside first and then removed, so there is never a half-written
    directory at ``dest``); on any error it is removed.

    An existing ``dest`` is replaced only under `check_replaceable` (``is_ours`` recognises a ``what`` that bitrieve
    wrote; without it only an empty directory is replaceable), checked before and again after the build. The write
    holds `exclusive_lock` on ``dest``; after success, what earlier interrupted writes of ``dest`` left beside it is
    removed.
    """
    dest = Path(dest)
    ours = is_ours or (lambda p: False)
    check_replaceable(dest, ours, what)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(dest, what), being_written(dest):
        tmp = Path(tempfile.mkdtemp(prefix=f".{hidden_stem(dest.name)}.{tag}-", dir=dest.parent))
        try:
            yield tmp
            os.chmod(tmp, default_mode(directory=True))
            check_replaceable(dest, ours, what)  # the target may have changed while we built
            if dest.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{hidden_stem(dest.name)}.old-", dir=dest.parent))
                os.replace(dest, old / dest.name)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        remove_stale_siblings(dest)
