"""Atomic file writes for the whole package (temp file in the same directory + ``os.replace``), so a crash never
leaves half a checkpoint, table or figure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


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
