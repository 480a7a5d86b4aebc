"""Registers the tests' method ``toy_linear`` (tests/toy_method.py), in this process and in every ``bitrieve``
process a test starts: tests/ goes on ``PYTHONPATH`` and ``toy_method`` into ``BITRIEVE_METHOD_MODULES``, which the
method registry imports when a name is not a built-in method (bitrieve/methods/__init__.py)."""

import os
import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)
os.environ["BITRIEVE_METHOD_MODULES"] = ",".join(
    m for m in ("toy_method", *os.environ.get("BITRIEVE_METHOD_MODULES", "").split(",")) if m)

import toy_method  # noqa: E402,F401  (registers toy_linear)
