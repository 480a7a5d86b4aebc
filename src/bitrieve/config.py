"""Typed run configuration (YAML in/out). Unknown keys and wrong types fail before anything runs, naming the key.

A run config names a method, its data, the code length and the seed; ``params`` are validated against the
method's own ``Params`` model (which carries the paper's hyper-parameters as defaults).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bitrieve.errors import ConfigError
from bitrieve.validation import StrictNumbers


# Renamed keys of the ``eval`` block: old name -> new name. Configs (and stored run directories' config.yaml) with
# the old name load as the new one; the config hash is taken over the old names so that stored runs keep theirs.
OLD_EVAL_KEYS = {"protocols": "extra_evaluations"}


def upgrade_keys(d: Any, renamed: dict[str, str], where: str = "") -> Any:
    """``d`` with each old key of ``renamed`` under its new name (a copy); both names given -> ValueError."""
    if not isinstance(d, dict) or not any(old in d for old in renamed):
        return d
    d = dict(d)
    for old, new in renamed.items():
        if old in d:
            if new in d:
                raise ValueError(f"'{where}{old}' is the old name of '{where}{new}': give only '{where}{new}'")
            d[new] = d.pop(old)
    return d


def upgrade_config(d: Any) -> Any:
    """A stored config dict (e.g. a run directory's config.yaml) with every renamed key under its new name."""
    if isinstance(d, dict) and isinstance(d.get("eval"), dict):
        return {**d, "eval": upgrade_keys(d["eval"], OLD_EVAL_KEYS, "eval.")}
    return d


class EvalConfig(StrictNumbers):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(0, ge=0, description="evaluate every N epochs (0: only at the end)")
    tasks: list[Literal["i2t", "t2i", "i2i", "t2t"]] = ["i2t", "t2i"]
    ks: list[int] = [50]
    map_all: bool = True
    tie: Literal["stable", "tie-averaged"] = "stable"
    extra_evaluations: list[str] = Field(
        default_factory=list, description="extra evaluations stored in results.json's 'protocols' block: mAP@K "
        "definitions (dcmh, deephash, ...), unseen-database, a method's own (pair-input, ...)")
    query_limit: int | None = Field(None, ge=1, description="evaluate on the first N queries only (quick checks)")

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, d: Any) -> Any:
        return upgrade_keys(d, OLD_EVAL_KEYS, "eval.")

    @field_validator("ks")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(k <= 0 for k in v):
            raise ValueError(f"every K must be > 0, got {v}")
        return v


class SelectionConfig(StrictNumbers):
    """Model selection on a validation split (bitrieve.engine.selection; docs/engine.md "Model selection")."""

    model_config = ConfigDict(extra="forbid")

    split: str = Field("train", description="train: seeded carve from the training split (default); query: carve "
                                            "from the test queries (DGCPN release; a labelled switch); any other "
                                            "name: that split of the store as it is (e.g. dev)")
    size: float = Field(0.1, gt=0, description="validation rows (>= 1) or fraction (< 1) of the carved split")
    seed: int = Field(0, description="split seed, separate from the training seed")
    metric: str = Field("map@all", description="validation metric (mean over eval.tasks): map@all, map@50, rsum, ...")
    every: int = Field(1, ge=1, description="validate every N epochs of the last stage")
    patience: int | None = Field(None, ge=1, description="stop after N validations without improvement (None: "
                                                         "train every epoch)")
    min_delta: float = Field(0.0, ge=0, description="an improvement must exceed this")
    keep: Literal["best", "last"] = Field("best", description="test the best validation checkpoint or the last")
    evaluate_test: bool = Field(True, description="false: never evaluate the test split (bitrieve sweep --select "
                                                  "evaluates the chosen candidate's runs afterwards)")


class RunConfig(StrictNumbers):
    model_config = ConfigDict(extra="forbid")

    method: str
    data: str = Field("wiki", description="'wiki' (embedded) or the path of a canonical store")
    bits: int = Field(32, ge=1, le=1024)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    compile: bool = False
    channels_last: bool = Field(False, description="convolution weights and pixel batches in channels-last layout "
                                                   "(faster convolutions on GPUs; same numbers)")
    params: dict[str, Any] = Field(default_factory=dict)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: Literal["none", "tensorboard", "wandb"] = "tensorboard"
    checkpoint_every: int = Field(1, ge=1)
    selection: SelectionConfig | None = Field(None, description="model selection on a validation split (None: the "
                                                                "final model is tested)")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML 1.1 reads a bare `off` (amp: off, --amp off, --set amp=off) as false

    @model_validator(mode="after")
    def _test_split_not_watched(self) -> "RunConfig":
        if self.selection is not None and self.eval.every:
            raise ValueError("eval.every evaluates the test split during training; with a selection block the "
                             "periodic evaluation is on the validation split (selection.every): set eval.every to 0")
        return self

    def method_params(self):
        """The method's validated ``Params`` (paper defaults overridden by ``params``)."""
        from bitrieve.methods import get_method

        cls = get_method(self.method)
        try:
            return cls.Params(**self.params)
        except ValidationError as e:
            raise ConfigError(_format_validation(e, prefix="params")) from None

    def resolved(self) -> dict[str, Any]:
        """Config with the method's full parameter set filled in (what is written to the run directory)."""
        d = self.model_dump(mode="json")
        params = self.method_params()
        d["params"] = params.model_dump(mode="json")
        for k in type(params).hash_neutral:  # added after runs were stored: absent while at the default
            if getattr(params, k) == type(params).model_fields[k].default:
                d["params"].pop(k, None)
        if not d.get("channels_last"):  # likewise: configs (and their hashes) from before the key stay
            d.pop("channels_last", None)
        if d.get("selection") is None:  # absent = no selection: configs (and their hashes) from before the key stay
            d.pop("selection", None)
        return d

    def identity(self) -> dict[str, Any]:
        """The resolved config under the key names runs were stored with (``OLD_EVAL_KEYS``): what the config hash
        and run-directory suffixes are taken over, so that renaming a key changes no stored run's identity."""
        d = self.resolved()
        d["eval"] = {next((o for o, n in OLD_EVAL_KEYS.items() if n == k), k): v for k, v in d["eval"].items()}
        return d

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


# pydantic's range errors (Field(ge=...) and the methods' range types), said the way the CLI says them
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def _format_validation(e: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"])
        key = f"{prefix}.{key}" if prefix else key
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        elif not err["loc"] or key == prefix:  # a check across keys: its message names them
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        else:  # e.g. "key 'params.epochs': must be >= 1 (got -3)"
            bound = _BOUNDS.get(err["type"])
            msg = (f"must be {bound[0]} {err['ctx'][bound[1]]:g}" if bound and "ctx" in err
                   else str(err["msg"]).removeprefix("Value error, "))
            lines.append(f"key '{key}': {msg} (got {err.get('input')!r})")
    return "; ".join(lines)


def parse_config(d: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a config dict (including the method's params); raise ConfigError naming the bad key."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(d).__name__}")
    try:
        cfg = RunConfig(**d)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_format_validation(e)}") from None
    try:
        cfg.method_params()
    except KeyError as e:
        raise ConfigError(f"{source}: key 'method': {e.args[0]}") from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


def set_override(d: dict[str, Any], assignment: str) -> None:
    """Apply ``key.sub=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{p}' is not a mapping")
    node[parts[-1]] = yaml.safe_load(value)


class DuplicateKeyError(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last value silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise DuplicateKeyError(f"key '{key}' is given twice (lines {seen[key]} and {line})")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml_mapping(path: str | Path, error: type[Exception] = None) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file -> {}); ``error`` (default ConfigError) names the file
    when it is missing, not YAML, or not a mapping. Every config / spec / stored config.yaml is read through here."""
    error = error or ConfigError
    path = Path(path)
    if not path.is_file():
        raise error(f"file not found: {path}")
    try:
        d = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as e:
        raise error(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return d


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    d = load_yaml_mapping(path)
    for o in overrides:
        set_override(d, o)
    return parse_config(d, source=str(path))


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.resolved(), sort_keys=False)
