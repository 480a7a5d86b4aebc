"""`bitrieve <command>`. Each sub-package registers its own sub-commands (``add_commands(subparsers)``)."""

from __future__ import annotations

import argparse
import importlib
import sys

# module -> it defines add_commands(subparsers); each command sets `func(args) -> int`
COMMAND_MODULES = [
    "bitrieve.demo",           # demo
    "bitrieve.data.cli",       # data convert / data info / features
    "bitrieve.engine.cli",     # train / eval
    "bitrieve.report.cli",     # sweep / report / figures
    "bitrieve.index.cli",      # index build / search
]


def build_parser() -> argparse.ArgumentParser:
    from bitrieve import __version__

    parser = argparse.ArgumentParser(prog="bitrieve", description="Deep hashing retrieval research framework.")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    from bitrieve.console import install_warning_handler

    install_warning_handler()  # one clean line per warning (bitrieve.console)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from bitrieve.atomic import LockedError, RefusedToReplace
    from bitrieve.config import ConfigError
    from bitrieve.data.types import DataError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, FileNotFoundError, RefusedToReplace, LockedError) as e:
        print(f"bitrieve: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
