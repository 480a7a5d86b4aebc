"""What every command prints besides its result: status lines, progress that suits where the output goes, and
warnings as one clean line each.

- ``status(msg)``: one line on stderr (``bitrieve: msg``) before anything that takes more than a couple of seconds
  (loading a run, fitting a closed-form method, evaluating), so a command is never silent for long.
- ``progress(...)``: a tqdm bar on a terminal. When stderr is not a terminal (``make demo > demo.log 2>&1``, CI) a
  bar would write thousands of carriage-return updates into the log, so it becomes a plain line at most every 30 s
  (none for loops shorter than 5 s); per-epoch bars are dropped there, the trainer prints one line per epoch instead
  (what Lightning and tqdm's ``disable=None`` do).
- ``install_warning_handler()`` (called by ``bitrieve.cli.main``): ``warning: <message>`` on one line, without the
  Python source line that the default handler prints; a message repeated later is not printed again, and the number
  of repeats is summarised when the command ends.
"""

from __future__ import annotations

import atexit
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
NON_TTY_INTERVAL_S = 30.0  # at most one progress line per this many seconds when stderr is not a terminal
NON_TTY_DELAY_S = 5.0  # loops shorter than this print no progress line at all when stderr is not a terminal


def interactive(stream: Any = None) -> bool:
    """True when ``stream`` (default: stderr, where progress goes) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# the command line's choice for status lines: None = follow each caller's ``progress`` flag (the Python API);
# True = shown even with --no-progress (which hides progress bars only); False = --quiet (none)
_STATUS_LINES: bool | None = None


def set_status_lines(on: bool | None) -> None:
    """``--quiet`` (False), ``--no-progress`` (True: bars off, status lines on), or back to the callers' choice."""
    global _STATUS_LINES
    _STATUS_LINES = on


def status(message: str, enabled: bool = True) -> None:
    """One status line on stderr (stdout stays the command's result: tables, JSON). ``enabled``: the caller's
    ``progress`` flag, overridden by the command line's ``--quiet`` / ``--no-progress`` (:func:`set_status_lines`)."""
    if _STATUS_LINES is False or (_STATUS_LINES is None and not enabled):
        return
    print(f"bitrieve: {message}", file=sys.stderr, flush=True)


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines (for logs and pipes)."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part:
                self.stream.write(part + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, enabled: bool = True,
             unit: str = "it", leave: bool = True, per_epoch: bool = False, **kwargs):
    """A tqdm bar (``set_postfix``, ``update``, ``close`` work in every mode).

    ``enabled=False``: silent. On a terminal: a normal bar. Otherwise: a line at most every 30 s after the first
    5 s, or nothing at all for ``per_epoch`` bars (the caller prints one line per epoch instead).
    """
    from tqdm import tqdm

    if not enabled or (per_epoch and not interactive()):
        return tqdm(iterable, total=total, disable=True)
    if interactive():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True, **kwargs)
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=True, file=_Lines(sys.stderr), ascii=True,
                ncols=100, mininterval=NON_TTY_INTERVAL_S, maxinterval=NON_TTY_INTERVAL_S, delay=NON_TTY_DELAY_S,
                **kwargs)


def first_compile_note(module: str) -> str:
    """' (first run here: compiling numba kernels, ~10 s)' when ``module``'s numba cache (``cache=True``: index files
    ``<module>.*.nbi`` in its ``__pycache__``) is still empty, else ''."""
    import importlib.util
    import os

    if os.environ.get("NUMBA_CACHE_DIR") or os.environ.get("NUMBA_DISABLE_JIT"):
        return ""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return ""
    origin = Path(spec.origin)
    if any((origin.parent / "__pycache__").glob(f"{origin.stem}.*.nbi")):
        return ""
    return " (first run here: compiling numba kernels, ~10 s)"


# --- warnings ---------------------------------------------------------------------------------------------------
_counts: Counter = Counter()
_installed = False


def _one_line(message: Any, category: type, filename: str) -> str:
    text = " ".join(str(message).split())
    where = "" if str(Path(filename).resolve()).startswith(_PACKAGE_DIR) else f" [{Path(filename).name}]"
    kind = "warning" if category in (UserWarning, RuntimeWarning) else f"warning ({category.__name__})"
    return f"{kind}: {text}{where}"


def _show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001 (warnings API)
    text = _one_line(message, category, filename)
    _counts[text] += 1
    if _counts[text] == 1:
        print(text, file=sys.stderr if file is None else file, flush=True)


def _summarise() -> None:
    repeats = {t: n for t, n in _counts.items() if n > 1}
    if repeats:
        total = sum(n - 1 for n in repeats.values())
        print(f"({total} repeat{'s' if total != 1 else ''} of {len(repeats)} warning"
              f"{'s' if len(repeats) != 1 else ''} above not shown)", file=sys.stderr, flush=True)


def install_warning_handler() -> None:
    """Print every warning as one line, each distinct message once, repeats summarised at exit (idempotent)."""
    global _installed
    warnings.showwarning = _show
    warnings.simplefilter("always")  # count every repeat; _show prints each message once
    for noisy in (DeprecationWarning, PendingDeprecationWarning):  # third-party deprecations are not the user's
        warnings.filterwarnings("ignore", category=noisy)
    if not _installed:
        atexit.register(_summarise)
        _installed = True
