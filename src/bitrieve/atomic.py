"""Atomic writes for the whole package (a temp file or directory beside the target + ``os.replace``), so a crash
never leaves half a checkpoint, table, figure, dataset store or index."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creating parent directories)."""
    return write_with_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_with_atomic(path: str | Path, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temp file onto ``path``; the temp file keeps the suffix
    (matplotlib picks the format from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
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


@contextlib.contextmanager
def atomic_directory(dest: str | Path, tag: str = "partial") -> Iterator[Path]:
    """Yield a new hidden directory ``.<name>.<tag>-*`` beside ``dest`` to build in; when the block ends normally it
    replaces ``dest`` (an existing ``dest`` is moved aside first and then removed, so there is never a half-written
    directory at ``dest``); on any error it is removed. What may be overwritten is the caller's check."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
