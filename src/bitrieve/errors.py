"""The package's expected faults, and the one place that turns a fault into one line for the user.

Every error the package raises on purpose (bad config, bad data, a refused write, a held lock, a corrupt checkpoint
or index, a bad report request) derives from `BitrieveError`; its message names the file, key or shape and what
was expected. `cli.main` prints any of them, an `OSError` (permission denied, disk full, read-only file system) or a
`format error` of a library reader as ``bitrieve: error: <one line>`` and exits with code 2; ``--debug`` or
``BITRIEVE_DEBUG=1`` shows the traceback instead (for bug reports). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


class BitrieveError(Exception):
    """Base of the package's expected faults (the message is what the user reads)."""


class ConfigError(BitrieveError, ValueError):
    """A config problem; the message names the key. (Here, not in config.py, so that low modules such as threads.py
    can raise it without importing the config and, through it, the methods.)"""


class CheckpointError(BitrieveError, ValueError):
    """A checkpoint that cannot be trusted: unreadable, not ours, or its checksum does not match."""


class BinaryIndexError(BitrieveError, ValueError):
    """A problem with index inputs or files; the message names the file/array/shape."""


class WeightsError(BitrieveError, ValueError):
    """A pretrained-weights file that is refused (it would execute code) or cannot be read."""


class TooFewItems(BitrieveError, ValueError):
    """The data is smaller than a method or protocol needs (a split of one item, a batch of one pair, more bits than
    feature dimensions); the message says what is needed and what there is."""


def format_errors() -> tuple[type[BaseException], ...]:
    """Errors of the libraries that read files (a truncated archive, a corrupt pickle or safetensors file...).
    Readers turn them into a `BitrieveError` naming the file; this tuple is the safety net of `cli.main`."""
    import pickle
    import zipfile
    import zlib

    types: list[type[BaseException]] = [zipfile.BadZipFile, zlib.error, EOFError, pickle.UnpicklingError]
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:  # pragma: no cover - safetensors is a core dependency
        pass
    try:
        from PIL import UnidentifiedImageError

        types.append(UnidentifiedImageError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: the file it concerns first, then what went wrong (and what to do when obvious)."""
    import errno

    where = e.filename if e.filename is not None else None
    what = e.strerror or str(e)
    hint = {errno.EACCES: "check the directory's permissions or choose another output path",
            errno.EPERM: "check the directory's permissions or choose another output path",
            errno.EROFS: "the file system is read-only; choose another output path",
            errno.ENOSPC: "free some space or choose another output path",
            errno.EDQUOT: "the disk quota is exceeded; free some space or choose another output path"}.get(e.errno)
    line = f"{where}: {what}" if where is not None else what
    if e.filename2 is not None:
        line += f" (-> {e.filename2})"
    return f"{line}; {hint}" if hint else line


def debug_requested(argv_flag: bool = False) -> bool:
    return argv_flag or os.environ.get("BITRIEVE_DEBUG", "").strip() not in ("", "0", "false", "no")


@contextlib.contextmanager
def reading(path: str | Path, what: str, error: type[Exception] = BitrieveError) -> Iterator[None]:
    """Turn the errors a library raises on a damaged file (truncated archive, bad CRC, corrupt compressed stream or
    pickle, unreadable bytes, an image PIL cannot identify) into one ``error`` naming ``path`` and what it should be.
    Missing files and permission problems pass through (they are OSErrors with the file name already)."""
    import pickle
    import zipfile
    import zlib

    try:
        yield
    except BitrieveError:
        raise
    except (FileNotFoundError, PermissionError):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise error(f"{path}: not a readable zip archive or member ({e}); expected {what} - the file is truncated or "
                    "corrupt, download it again") from None
    except (EOFError, zlib.error, pickle.UnpicklingError) as e:
        raise error(f"{path}: truncated or corrupt ({type(e).__name__}: {e}); expected {what} - download it "
                    "again") from None
    except (OSError, ValueError, IndexError, TypeError, KeyError, AttributeError, MemoryError) as e:
        # PIL.UnidentifiedImageError is an OSError; h5py and scipy raise OSError/ValueError on damaged files
        raise error(f"{path}: cannot read it as {what} ({type(e).__name__}: {e}); the file is truncated, corrupt "
                    "or of another format") from None


def read_json_file(path: str | Path, error: type[Exception] = BitrieveError, hint: str = "",
                   expect_object: bool = True):
    """A JSON file's content; invalid JSON (or, with ``expect_object``, anything but an object) is one ``error``
    naming the file, followed by ``hint`` (what to do)."""
    import json

    suffix = f"; {hint}" if hint else ""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e}){suffix}") from None
    if expect_object and not isinstance(d, dict):
        raise error(f"{path}: expected a JSON object, got {type(d).__name__}{suffix}")
    return d
