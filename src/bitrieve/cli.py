"""`bitrieve <command>`. Each sub-package registers its own sub-commands (``add_commands(subparsers)``).

This module is the one place that maps expected faults to one line: any `bitrieve.errors.BitrieveError`, an
`OSError` (permission denied, disk full...) or a library's file-format error prints ``bitrieve: error: ...`` and
exits with code 2; ``--debug`` (or ``BITRIEVE_DEBUG=1``) shows the traceback instead. A closed output pipe
(``bitrieve eval RUN --json | head``) ends quietly with code 141 (128 + SIGPIPE, as other command-line tools).
Every command takes ``--threads N`` (bitrieve/threads.py decides and applies the thread count before it runs).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Iterator

from bitrieve.options import int_option

# module -> it defines add_commands(subparsers); each command sets `func(args) -> int`
COMMAND_MODULES = [
    "bitrieve.demo",           # demo
    "bitrieve.data.cli",       # data convert / data info / data verify / features
    "bitrieve.engine.cli",     # train / eval
    "bitrieve.report.cli",     # sweep / report / figures
    "bitrieve.index.cli",      # index build / search
    "bitrieve.reproduce",      # reproduce (paper-protocol packs)
]
EXIT_ERROR = 2
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line, like every other error (argparse prints the usage block first); the subcommand
    parsers inherit the class. ``--help`` shows the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_ERROR, f"bitrieve: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        for p in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
            yield from _leaf_parsers(p)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--debug`` on every command (after the command name, where users put them)."""
    for leaf in _leaf_parsers(parser):
        if "--threads" not in leaf._option_string_actions:
            leaf.add_argument("--threads", type=int_option(1), default=argparse.SUPPRESS, metavar="N",
                              help="CPU threads for torch, numba and FAISS (default: OMP_NUM_THREADS, else all "
                                   "cores)")
        if "--quiet" not in leaf._option_string_actions:
            leaf.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                              help="no status lines and no progress bars (errors and results only)")
        if "--debug" not in leaf._option_string_actions:
            leaf.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="show the full traceback of an error (also BITRIEVE_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    from bitrieve import __version__

    parser = OneLineParser(prog="bitrieve", description="Deep hashing retrieval research framework.")
    parser.add_argument("--threads", type=int_option(1), default=None, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error "
                                                              "(also BITRIEVE_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"bitrieve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:  # not written yet
                continue
            raise
        m.add_commands(sub)
    _add_common_options(parser)
    return parser


def one_line(e: BaseException) -> str:
    """The one line printed for an expected fault (an OSError names its file first)."""
    from bitrieve.errors import describe_os_error

    text = describe_os_error(e) if isinstance(e, OSError) else str(e)
    if not text:
        text = type(e).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass


def main(argv: list[str] | None = None) -> int:
    from bitrieve.console import install_warning_handler
    from bitrieve.errors import BitrieveError, debug_requested, format_errors

    install_warning_handler()  # one clean line per warning (bitrieve.console)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (one line, OneLineParser), --help or --version: their exit status
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    debug = debug_requested(bool(getattr(args, "debug", False)))
    from bitrieve import console

    # --quiet: no status lines; --no-progress: no progress bars, status lines still shown; else each caller decides
    quiet = bool(getattr(args, "quiet", False))
    if quiet and hasattr(args, "no_progress"):
        args.no_progress = True  # --quiet hides the bars too
    console.set_status_lines(False if quiet else True if getattr(args, "no_progress", False) else None)
    from bitrieve.atomic import INTERRUPTED

    INTERRUPTED.clear()  # what this command's Ctrl-C stops (main() may run many times in one process)
    if not debug and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "torch" not in sys.modules:
        # torch's C++ store logs each failed connection attempt with a backtrace; the fault is reported in one
        # line instead (engine/distributed.py). Set before torch loads; --debug or an explicit setting keeps them.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        from bitrieve import threads

        threads.configure(getattr(args, "threads", None))
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return rc
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if debug:
            raise
        left = "; ".join(f"{t} unchanged" for t in INTERRUPTED) or "nothing half-written is left"
        INTERRUPTED.clear()  # main() may run again in this process (tests, notebooks)
        print(f"bitrieve: interrupted; {left}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BitrieveError, OSError, *format_errors()) as e:
        if debug:
            raise
        print(f"bitrieve: error: {one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        console.set_status_lines(None)  # the Python API after a command (tests, notebooks): the callers decide


if __name__ == "__main__":
    sys.exit(main())
