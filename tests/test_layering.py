"""The package's layering (docs/architecture.md "Layers"): no import cycle between modules, no import from a lower
layer into a higher one, every module assigned to a layer, and eval/ free of torch.

Imports are read from the source (ast), function-level ones included: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "bitrieve"
DOC = ROOT / "docs" / "architecture.md"
EVAL_THIRD_PARTY = {"numpy", "numba", "scipy"}  # eval/ computes on arrays only (no torch, no config)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(package modules, top-level names of other packages) that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside, outside = set(), set()

    def add(target: str) -> None:
        while target and target not in known:  # a name imported from a module -> that module
            target = target.rpartition(".")[0]
        if target and target != name:
            inside.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "bitrieve":
                    add(alias.name)
                else:
                    outside.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "bitrieve":
                outside.add(source.split(".")[0])
                continue
            for alias in node.names:  # `from bitrieve.engine import trainer` imports the module trainer
                add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return inside, outside


def documented_layers() -> list[tuple[str, list[str]]]:
    """``[(layer, [module or package.*, ...]), ...]`` bottom to top, from the doc's YAML block that starts with
    ``# layers``."""
    block = re.search(r"```yaml\n(# layers.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, f"{DOC}: no ```yaml block starting with '# layers'"
    return [(layer, list(names)) for layer, names in yaml.safe_load(block.group(1)).items()]


def layer_of(known: dict[str, Path]) -> dict[str, int]:
    """Module -> its layer's position (0 = bottom). A module listed by name wins over a ``package.*`` entry; the
    longest matching ``package.*`` wins over a shorter one."""
    exact, wildcard = {}, {}
    for i, (_, names) in enumerate(documented_layers()):
        for n in names:
            (wildcard if n.endswith(".*") else exact)[n.removesuffix(".*")] = i
    out = {}
    for m in known:
        if m in exact:
            out[m] = exact[m]
            continue
        owners = [p for p in wildcard if m == p or m.startswith(p + ".")]
        if owners:
            out[m] = wildcard[max(owners, key=len)]
    return out


KNOWN = modules()
GRAPH = {m: imports(m, p, KNOWN) for m, p in KNOWN.items()}


def test_every_module_and_every_listed_name_has_its_place():
    layers = layer_of(KNOWN)
    missing = sorted(set(KNOWN) - set(layers))
    assert not missing, f"modules without a layer in {DOC.name} (```layers block): {missing}"
    listed = {n.removesuffix(".*") for _, names in documented_layers() for n in names}
    stale = sorted(n for n in listed if n not in KNOWN)
    assert not stale, f"{DOC.name} lists modules that do not exist: {stale}"


def test_no_import_reaches_a_higher_layer():
    layers = layer_of(KNOWN)
    names = [layer for layer, _ in documented_layers()]
    upward = [f"{m} ({names[layers[m]]}) imports {t} ({names[layers[t]]})"
              for m, (inside, _) in sorted(GRAPH.items()) for t in sorted(inside)
              if m in layers and t in layers and layers[t] > layers[m]]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle():
    # Tarjan's strongly connected components: any component of more than one module is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(GRAPH)))

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for t in GRAPH[m][0]:
            if t not in index:
                visit(t)
                low[m] = min(low[m], low[t])
            elif t in on_stack:
                low[m] = min(low[m], index[t])
        if low[m] == index[m]:
            component = []
            while True:
                t = stack.pop()
                on_stack.discard(t)
                component.append(t)
                if t == m:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_eval_computes_on_arrays_only():
    allowed = EVAL_THIRD_PARTY | set(sys.stdlib_module_names) | {"__future__"}
    bad = {m: sorted(outside - allowed) for m, (_, outside) in GRAPH.items()
           if (m == "bitrieve.eval" or m.startswith("bitrieve.eval.")) and outside - allowed}
    assert not bad, f"eval/ imports beyond {sorted(EVAL_THIRD_PARTY)}: {bad}"


@pytest.mark.parametrize("source, expected", [
    ("from bitrieve.engine import trainer\n", {"bitrieve.engine.trainer"}),
    ("def f():\n    from bitrieve.config import ConfigError\n", {"bitrieve.config"}),
    ("from . import hamming\nfrom .metrics import TASKS\n", {"bitrieve.eval.hamming", "bitrieve.eval.metrics"}),
])
def test_the_import_reader_sees_lazy_relative_and_submodule_imports(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert imports("bitrieve.eval.probe", path, KNOWN)[0] == expected
