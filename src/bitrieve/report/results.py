"""Reading stored runs: every table and figure is regenerated from the stored run records (``results.json``, read
through `bitrieve.record.read_record`; docs/architecture.md), never typed by hand.

A run is identified by its method, its *variant* (the resolved config minus bits, seed and runtime-only keys such
as device; read from the run directory's ``config.yaml`` when present), its bit length and its seed. Two runs of
the same method whose variants differ (an ablation switch, a changed hyper-parameter) become separate table rows,
labelled by the keys that differ.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bitrieve.config import load_yaml_mapping
from bitrieve.errors import BitrieveError
from bitrieve.record import RECORD_FILE, RecordError, RunRecord, TaskMetrics, read_record

TASK_ORDER = ("i2t", "t2i", "i2i", "t2t")
TASK_NAMES = {"i2t": "I→T", "t2i": "T→I", "i2i": "I→I", "t2t": "T→T"}
# config keys that do not change the trained model (or that are a table axis): not part of the variant. The
# evaluation settings (eval.*) are not either: what matters of them (tie policy, query count) is the protocol,
# which tables compare separately; a run evaluated with extra K values or protocols is the same model.
NON_VARIANT_KEYS = {"bits", "seed", "device", "compile", "tracking", "checkpoint_every"}
NON_VARIANT_PREFIXES = ("eval.",)


class ReportError(BitrieveError, ValueError):
    """A problem with stored results or a report request; the message names the file/key."""


@dataclass
class RunResult:
    path: Path  # the results.json file
    record: RunRecord
    variant: dict[str, Any] = field(default_factory=dict)  # flattened config keys that define the variant

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def method(self) -> str:
        return self.record.method

    @property
    def dataset(self) -> str:
        """The record's dataset, marked "(PROXY)" for a proxy store's runs, so every table row and figure title built
        from it says so."""
        return proxy_label(self.record.dataset)

    @property
    def bits(self) -> int:
        return self.record.bits

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def protocol(self) -> dict[str, Any]:
        """The protocol block as stored (the keys tables compare)."""
        return self.record.protocol.model_dump(exclude_unset=True)

    @property
    def metrics(self) -> dict[str, TaskMetrics]:
        return self.record.metrics

    @property
    def curves(self) -> dict[str, dict[str, Any]]:
        """task -> {"pr": {radius, precision, recall}, "p@n": {n, precision}} as stored."""
        return {t: c.model_dump(by_alias=True) for t, c in self.record.curves.items()}

    @property
    def history(self) -> list[dict[str, Any]]:
        """One row per epoch as stored: stage, epoch, then every logged quantity."""
        return [h.model_dump() for h in self.record.history]

    @property
    def variant_sha(self) -> str:
        return hashlib.sha256(json.dumps(self.variant, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def metric(self, task: str, name: str) -> float | None:
        """``map@all`` from ``metrics``; ``dcmh:map@50`` from the compatibility protocol block ``protocols``.

        Renamed mAP@K definitions (``eval.map_definitions.RENAMED``) are read under either name: ``djsrh:map@50``
        asks for ``dcmh``, and a block stored as ``djsrh`` by runs evaluated before the rename answers for ``dcmh``."""
        if ":" in name:
            from bitrieve.eval.map_definitions import canonical_name as canonical_protocol

            proto, name = name.split(":", 1)
            stored = {k: v.tasks() for k, v in self.record.extra_evaluations.items()}
            wanted = canonical_protocol(proto) if proto.lower() in _renamed() else proto
            block = stored.get(wanted) or next((v for k, v in stored.items() if k.lower() in _renamed()
                                                and canonical_protocol(k) == wanted), None) or {}
        else:
            block = self.record.metrics
        v = (block.get(task) or {}).get(name)
        return None if v is None else float(v)

    def tasks(self) -> list[str]:
        return list(self.record.metrics)


def proxy_label(dataset: str) -> str:
    """``mirflickr25k-proxy-dense`` -> ``mirflickr25k-proxy-dense (PROXY)``: a proxy store's card name (data/proxy.py,
    ``<NAME>-proxy-<KIND>[-<rows>]``) reaches the run record unchanged; its runs are never results on the real
    dataset."""
    if "-proxy-" in dataset and not dataset.endswith("(PROXY)"):
        return f"{dataset} (PROXY)"
    return dataset


def _renamed() -> set[str]:
    """Every name involved in a protocol rename (old and new), lower-case."""
    from bitrieve.eval.map_definitions import RENAMED

    return set(RENAMED) | set(RENAMED.values())


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _variant_of(run_dir: Path) -> dict[str, Any]:
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        return {}
    cfg = load_yaml_mapping(cfg_path, ReportError)
    return {k: v for k, v in flatten(cfg).items()
            if k not in NON_VARIANT_KEYS and not k.startswith(NON_VARIANT_PREFIXES)}


def load_result(path: str | Path) -> RunResult:
    """Load and check one results.json (`bitrieve.record.read_record`); errors name the file and the key."""
    path = Path(path)
    try:
        record = read_record(path)
    except RecordError as e:
        raise ReportError(str(e)) from None
    return RunResult(path, record, _variant_of(path.parent))


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """results.json files under each path (a results.json file, a run directory, or a root searched recursively)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            if p.name != RECORD_FILE:
                raise ReportError(f"{p}: expected a run directory, a root of run directories or a {RECORD_FILE}")
            found.append(p)
        elif p.is_dir():
            hits = sorted(p.rglob(RECORD_FILE))
            if not hits:
                raise ReportError(f"{p}: no {RECORD_FILE} below this directory (no finished runs)")
            found.extend(hits)
        else:
            raise ReportError(f"{p}: no such file or directory")
    # the same file named twice (a run dir and its root): keep one
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def load_results(paths: Iterable[str | Path]) -> list[RunResult]:
    runs = [load_result(f) for f in find_results(paths)]
    return dedupe(runs)


def dedupe(runs: list[RunResult]) -> list[RunResult]:
    """Two stored runs of the same (method, variant, dataset, bits, seed) would be counted twice: keep the first,
    and say so in one warning that names the pairs."""
    seen: dict[tuple, RunResult] = {}
    repeats: list[str] = []
    for r in runs:
        key = (r.method, r.variant_sha, r.dataset, r.bits, r.seed, json.dumps(r.protocol, sort_keys=True))
        if key in seen:
            repeats.append(f"{r.run_dir} repeats {seen[key].run_dir} ({r.method} b{r.bits} s{r.seed})")
            continue
        seen[key] = r
    if repeats:
        shown = "; ".join(repeats[:3]) + (f"; and {len(repeats) - 3} more" if len(repeats) > 3 else "")
        warnings.warn(f"{len(repeats)} duplicate run{'s' if len(repeats) > 1 else ''} counted once (same method, "
                      f"config, bits, seed and protocol; the first found is kept): {shown}", stacklevel=3)
    return list(seen.values())


def read_card(run: RunResult) -> dict[str, Any] | None:
    """The run's stored dataset card (``card.json`` beside results.json), or None."""
    try:
        card = json.loads((run.run_dir / "card.json").read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def current_card(run: RunResult) -> dict[str, Any] | None:
    """The card the run's data has *now* (embedded Wiki, or the store's card.json), or None when the data is not
    here. Lets a report tell a run evaluated under an older card from one of another dataset."""
    spec = run.variant.get("data")
    if not isinstance(spec, str):
        return None
    if spec == "wiki":
        from bitrieve.data.wiki import read_wiki_mat

        return dict(read_wiki_mat().card)
    try:
        card = json.loads((Path(spec) / "card.json").read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def card_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Top-level card keys whose values differ (what changed between two versions of a dataset card)."""
    return sorted(k for k in set(a) | set(b) if json.dumps(a.get(k), sort_keys=True, default=str)
                  != json.dumps(b.get(k), sort_keys=True, default=str))


def row_labels(runs: list[RunResult]) -> dict[tuple[str, str], str]:
    """(method, variant_sha) -> a row label: the method name, plus the differing config keys when one method has
    several variants (e.g. ``agch (params.no_gcn=true)``)."""
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_method.setdefault(r.method, {})[r.variant_sha] = r.variant
    labels: dict[tuple[str, str], str] = {}
    for method, variants in by_method.items():
        if len(variants) == 1:
            (sha,) = variants
            labels[(method, sha)] = method
            continue
        keys = sorted({k for v in variants.values() for k in v})
        differing = [k for k in keys if len({json.dumps(v.get(k), default=str) for v in variants.values()}) > 1]
        for sha, v in variants.items():
            parts = [f"{k.removeprefix('params.')}={_fmt_value(v.get(k), k)}" for k in differing if k != "method"]
            labels[(method, sha)] = f"{method} ({', '.join(parts)})" if parts else f"{method} [{sha}]"
    return labels


def _fmt_value(v: Any, key: str = "") -> str:
    if key == "data" and isinstance(v, str) and Path(v).is_absolute():
        # no machine path on a page: a store by its folder name (the run's card.json identifies it)
        return f".../{Path(v).name}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    return str(v)
