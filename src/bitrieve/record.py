"""The run record: one ``results.json`` per run, a typed and versioned pydantic model (docs/architecture.md).

The engine is its only writer (`write_record`); report/, index/, the sweep and the scripts read it through
`read_record`, which names the file and the key of anything it refuses. ``RECORD_FILE`` and ``SCHEMA_VERSION`` are
defined here and nowhere else.

Numbers keep their JSON type (an ``int`` stays an int, a ``float`` a float: ``Number``), so a record read and
written again has exactly the values it had. Blocks whose keys are data (tasks, metric names, modalities, loss
terms) are typed mappings; fixed blocks are models that refuse unknown keys. Optional fields are written only when
they were set (a record read from a file is written back with the same keys).

Schema versions: 1 is the only one so far. A reader for a later version keeps reading schema-1 files through a
migration in `_MIGRATIONS`. A stored file is rewritten only by a stated migration (``migrations``: e.g.
scripts/migrate_records.py, which made stored paths portable), never in a number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, model_validator

from bitrieve.atomic import write_bytes_atomic
from bitrieve.errors import BitrieveError

RECORD_FILE = "results.json"
SCHEMA_VERSION = 1

Number = Union[StrictInt, StrictFloat]  # a JSON number, its int/float type kept
TaskMetrics = dict[str, Number]  # metric key (map@all, map@50, p@h<=2, r@1, rsum, queries_without_relevant, ...)


class RecordError(BitrieveError, ValueError):
    """A results.json that cannot be read as a run record; the message names the file and the key."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class Protocol(_Block):
    """How the numbers were computed (``record.protocol``): stated next to them in every table."""

    name: str  # the dataset's split recipe (data/splits.py), e.g. "wiki"
    relevance: str
    tie: str
    ranking: str
    map: list[str]  # the mAP kinds computed: "map@all", "map@K"
    tasks: list[str]
    n_query: int
    n_retrieval: int
    query_limit: int | None
    retrieval_is_train: bool
    # eval.extra_evaluations: the names of the blocks of ``record.extra_evaluations`` (file key: extra_protocols)
    extra_evaluations: list[str] = Field(alias="extra_protocols")
    notes: list[str] | None = None  # e.g. an old protocol name mapped to its new one
    name_relabelled_from: str | None = None  # a stored run whose protocol name was corrected afterwards


class ExtraEvaluation(BaseModel):
    """One block of ``record.extra_evaluations``: a compatibility mAP@K definition (``dcmh``), a database protocol
    (``unseen-database``) or a method's own evaluation (``ucmfh-pair-input``): per task metrics, and a
    ``description`` for the non-ranking ones."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, TaskMetrics] = Field(init=False)  # task -> metrics
    description: str | None = None

    def tasks(self) -> dict[str, TaskMetrics]:
        return dict(self.__pydantic_extra__ or {})


class PRCurve(_Block):
    radius: list[int]
    precision: list[Number]
    recall: list[Number]


class PrecisionAtN(_Block):
    n: list[int]
    precision: list[Number]


class Curves(_Block):
    """Per task: precision-recall over Hamming radius, precision@top-n."""

    pr: PRCurve
    p_at_n: PrecisionAtN = Field(alias="p@n")


class CodeStats(_Block):
    """codes.diagnostics.code_diagnostics of one modality's retrieval codes."""

    n_items: Number
    mean_abs_bit_balance: Number
    max_abs_bit_balance: Number
    constant_bits: Number
    constant_bit_fraction: Number
    mean_bit_entropy: Number
    distinct_codes: Number
    largest_code_share: Number
    quantization_gap: Number


class GroupMovement(_Block):
    relative_change: Number | None
    norm_ratio: Number | None
    beyond_decay: Number | None
    n_params: int
    absolute_change: Number | None = None  # zero-initialised groups only


class ParameterMovement(_Block):
    threshold: Number
    groups: dict[str, GroupMovement]
    warnings: list[str]


class Diagnostics(_Block):
    method: dict[str, Number]  # HashMethod.diagnostics on a fixed training batch
    codes: dict[str, CodeStats]  # modality -> statistics
    warnings: list[str]  # collapse warnings
    parameter_movement: ParameterMovement | None = None  # absent in runs recorded before it existed


class HistoryRow(BaseModel):
    """One epoch: its stage and epoch in the stage, then every logged quantity (loss terms, ``lr/<group>``,
    ``eval/<task>/<metric>``, ``diag/...``, ``codes/...``, ``val/...``)."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, Number] = Field(init=False)
    stage: str
    epoch: int


class ValidationSplit(_Block):
    source: str
    seed: int | None
    size: Number
    n_validation: int
    n_validation_database: int
    n_train: int
    n_query: int
    ids: list[int]


class ValidationPoint(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, Number] = Field(init=False)  # task -> score
    epoch: int
    score: Number


class Selection(_Block):
    """Model selection on a validation split (engine/selection.py)."""

    split: ValidationSplit
    metric: str
    tasks: list[str]
    every: int
    patience: int | None
    min_delta: Number
    keep: str
    curve: list[ValidationPoint]
    best_epoch: int | None
    best_score: Number | None
    stopped_early: bool
    last_epoch: int
    kept_epoch: int
    test_evaluated: bool
    test_evaluated_by: str | None = None


class Environment(_Block):
    python: str
    torch: str
    numpy: str
    platform: str
    device: str
    seed: int
    git_commit: str | None
    argv: list[str]
    torch_threads: int
    world_size: int | None = None
    per_rank_batch: dict[str, int] | None = None  # torchrun: rows of a global batch one rank's networks compute
    cuda: str | None = None
    gpu: str | None = None


def metric_range(name: str) -> tuple[float, float] | None:
    """The values a metric can take: mAP, precision and p@h<=r in [0, 1]; recall r@K in percent [0, 100]; a count
    ``queries_without_relevant`` >= 0; None (finite only) for a key this reader does not know (e.g. rsum)."""
    if name.startswith(("map", "p@", "precision")):
        return (0.0, 1.0)
    if name.startswith("r@"):
        return (0.0, 100.0)
    if name == "queries_without_relevant":
        return (0.0, math.inf)
    return None


def check_task_metrics(tasks: dict[str, Any], where: str) -> None:
    """Every number finite and in its :func:`metric_range` (a NaN or 7.5 mAP would print as a result)."""
    for task, metrics in tasks.items():
        if not isinstance(metrics, dict):  # e.g. rsum at the task level of a matching evaluation
            metrics, prefix = {task: metrics}, where
        else:
            prefix = f"{where}.{task}"
        for name, v in metrics.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            lo, hi = metric_range(name) or (-math.inf, math.inf)
            if not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"key '{prefix}.{name}' is {v!r}: a metric must be finite"
                                 + (f" and in [{lo:g}, {hi:g}]" if metric_range(name) else ""))


class Migration(_Block):
    """A stated rewrite of a stored run directory after the run (``record.migrations``; e.g.
    ``scripts/migrate_records.py``): what changed, by what, when. Never a metric: only paths and the config hash
    that covers them."""

    date: str  # YYYY-MM-DD
    by: str  # the script that rewrote the files
    changes: list[str]  # one line per change: file, key, new value (old values: git history)
    config_sha256_before: str | None = None  # the record's config_sha256 before (config.yaml's data changed)


class RunRecord(_Block):
    """The record of one finished run (``results.json``)."""

    schema_version: Literal[1] = Field(alias="schema")
    method: str
    dataset: str
    dataset_card_sha256: str
    config_sha256: str
    bits: int
    seed: int
    protocol: Protocol
    metrics: dict[str, TaskMetrics]  # task (i2t, t2i, i2i, t2t) -> metrics; empty when the test split was not run
    # the extra evaluations eval.extra_evaluations names; the file keeps the key "protocols" of schema 1
    extra_evaluations: dict[str, ExtraEvaluation] = Field(alias="protocols")
    curves: dict[str, Curves]  # task -> curves
    diagnostics: Diagnostics
    history: list[HistoryRow]
    selection: Selection | None = None
    env: Environment
    wall_seconds: Number
    migrations: list[Migration] | None = None  # stated rewrites after the run (absent: none)

    @model_validator(mode="after")
    def _metrics_in_range(self) -> "RunRecord":
        check_task_metrics(self.metrics, "metrics")
        for name, block in self.extra_evaluations.items():
            check_task_metrics(block.tasks(), f"protocols.{name}")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object written to results.json (the keys a stored record had, in the model's order). Python
        mode, so a NaN loss in the history is written as json.dumps writes it (NaN), not turned into null."""
        return self.model_dump(mode="python", by_alias=True, exclude_unset=True)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy/torch scalars as Python numbers and tuples as lists (what json.dumps would write), so the
    engine's dicts validate as they will be read back."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if hasattr(obj, "item"):  # numpy / torch scalars (numpy's float64 is a float subclass: made a plain float)
        return obj.item()
    if isinstance(obj, str):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("int", "float", "function-after"))


def record_from_dict(data: Any, source: str = "run record") -> RunRecord:
    """Validate a results.json object (migrating an older schema); `RecordError` naming ``source`` and the key."""
    if not isinstance(data, dict):
        raise RecordError(f"{source}: expected a JSON object at the top level")
    version = data.get("schema")
    if version in _MIGRATIONS:
        data = _MIGRATIONS[version](data)
    elif version != SCHEMA_VERSION:
        raise RecordError(f"{source}: key 'schema' is {version!r}, this reader knows schema {SCHEMA_VERSION}")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        raise RecordError(f"{source}: {_first_problem(e)}") from None


def _first_problem(e: ValidationError) -> str:
    """The first key pydantic refused, in words (a number refused by both int and float reads as one problem)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for err in e.errors():
        by_key.setdefault(_where(err["loc"]), []).append(err)
    key, errs = next(iter(by_key.items()))
    more = f" (and {len(by_key) - 1} more problem(s))" if len(by_key) > 1 else ""
    err = errs[0]
    if err["type"] == "missing":
        return f"missing key '{key}'{more}"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{key}'{more}"
    if err["type"] == "value_error" and not key:  # a check across keys (the record's metric ranges): its own words
        return str(err["msg"]).removeprefix("Value error, ") + more
    msg = "expected a number" if {x["type"] for x in errs} == {"int_type", "float_type"} else err["msg"]
    return f"key '{key}': {msg}, got {type(err['input']).__name__} {err['input']!r:.60}{more}"


def read_record(path: str | Path) -> RunRecord:
    """Read and validate one results.json (``path``: the file or its run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecordError(f"{path}: no such file (no finished run)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    return record_from_dict(data, str(path))


def write_record(run_dir: str | Path, record: RunRecord) -> Path:
    """Write ``record`` to ``run_dir/results.json`` atomically (fsynced before the rename)."""
    text = json.dumps(record.to_json_dict(), indent=2) + "\n"
    return write_bytes_atomic(Path(run_dir) / RECORD_FILE, text.encode("utf-8"))


# schema version -> function turning a record of that version into the current one (none yet)
_MIGRATIONS: dict[int, Any] = {}
