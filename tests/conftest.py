"""Registers the tests' method ``toy_linear`` (tests/toy_method.py) and the walk-through method ``dhn``
(examples/dhn/dhn.py), in this process and in every ``bitrieve``
process a test starts: tests/ goes on ``PYTHONPATH`` and ``toy_method`` into ``BITRIEVE_METHOD_MODULES``, which the
method registry imports when a name is not a built-in method (bitrieve/methods/__init__.py)."""

import os
import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
# the walk-through method of docs/compose.md (examples/dhn): registered like a user's own method, so every
# registry-wide test runs on it too - a new method is tested without a test of its own
EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "dhn")
for path in (EXAMPLE, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, EXAMPLE, os.environ.get("PYTHONPATH")) if p)
os.environ["BITRIEVE_METHOD_MODULES"] = ",".join(
    m for m in ("toy_method", "dhn", *os.environ.get("BITRIEVE_METHOD_MODULES", "").split(",")) if m)

import dhn  # noqa: E402,F401  (registers dhn)
import toy_method  # noqa: E402,F401  (registers toy_linear)
