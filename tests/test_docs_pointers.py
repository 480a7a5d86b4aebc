"""The provenance tables point at our code as `path.py:LINE` `Name`: the named line must still define or use Name.

Line numbers drift whenever a file above them changes (a decorator, an import); this test fails on such drift
instead of letting a table point at the wrong line.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bitrieve"
POINTER = re.compile(r"`((?:methods|parts|losses|eval|engine|data|codes|index|report)/[\w/]+\.py):(\d+)(?:-\d+)?` "
                     r"`([A-Za-z_][\w.]*)(?:\([^`]*\))?`")


def _pointers():
    for md in sorted((ROOT / "docs").rglob("*.md")):
        for number, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
            for m in POINTER.finditer(line):
                yield f"{md.relative_to(ROOT)}:{number}", m.group(1), int(m.group(2)), m.group(3)


def test_there_are_pointers_to_check():
    assert len(list(_pointers())) >= 15  # the provenance tables of DJSRH/JDSH/DGCPN, AGCH, UCMFH


def test_every_named_pointer_lands_on_its_name():
    wrong = []
    for where, path, line, name in _pointers():
        source = SRC / path
        if not source.exists():
            wrong.append(f"{where}: {path} does not exist")
            continue
        lines = source.read_text(encoding="utf-8").splitlines()
        short = name.split(".")[-1]
        if line > len(lines) or short not in lines[line - 1]:
            wrong.append(f"{where}: {path}:{line} does not contain '{short}'")
    assert not wrong, "\n".join(wrong)
