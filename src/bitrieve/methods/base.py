"""The contract between a method and the one training engine (bitrieve.engine: engine/trainer.py assembles a run,
engine/epochs.py runs its stages).

A method is a ``torch.nn.Module`` subclass of :class:`HashMethod` that
- holds its modules (built from parts/) and a pydantic ``Params`` model carrying the paper's defaults,
- names its parameter groups with their own learning rates (``param_groups``),
- declares its training as a list of :class:`Stage` (multi-stage training = several stages; AGCH's alternating
  update = one stage whose loss trains every group, each on its own learning rate; several optimiser updates per
  batch, as DGCPN's released loop takes = one stage with a sequence of :class:`Step`),
- encodes one modality at a time (``encode``); the engine signs the output and evaluates.

Labels never reach ``Stage.loss`` unless the method sets ``supervised = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Literal

import torch
from pydantic import ConfigDict, Field
from bitrieve.validation import StrictNumbers

Batch = dict[str, torch.Tensor]  # keys: modality names ("image", "text"), "index" (rows of train split), "label" if supervised


# The range of a numeric hyper-parameter is part of its type: ``lr: Positive = 1e-3``. pydantic checks it when the
# config is read (the error names the key, the value and the bound) and every float must also be finite
# (``allow_inf_nan=False``). tests/test_faults.py checks that every numeric field of every registered method has a
# range (one of these, or its own ``Field(ge=..., le=...)``) or is marked ``AnyFinite``.
Count = Annotated[int, Field(ge=1)]  # sizes, widths, epochs, iterations
Count0 = Annotated[int, Field(ge=0)]  # 0 = the stage / step is skipped; seeds and milestones count from 0
Positive = Annotated[float, Field(gt=0)]  # learning rates, temperatures, scales, clipping norms
NonNegative = Annotated[float, Field(ge=0)]  # loss weights, penalties, margins, weight decay (< 0 flips the objective)
Mix = Annotated[float, Field(ge=0, le=1)]  # mixing coefficients: x * A + (1 - x) * B
Probability = Annotated[float, Field(ge=0, lt=1)]  # dropout, momentum, Adam's betas
Fraction = Annotated[float, Field(gt=0, le=1)]  # a share of the training set, a decay factor


class _AnyFinite:
    """Marker: any finite value has a meaning (JDSH's similarity thresholds and distribution locations are negative
    in the released code; DGCPN's paired-code target K is 1.5 there, outside the cosine range)."""


AnyFinite = Annotated[float, _AnyFinite()]


class Params(StrictNumbers):
    """Base for a method's hyper-parameters. Unknown keys are errors (typos fail before anything runs); numbers must
    be finite and lie in the range their type declares (``Count``, ``Positive``, ... above)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    # fields added after runs of the method were stored: left out of the resolved config (and so of its hash) while
    # they hold their default, so those runs still count as "the same config" (config.RunConfig.resolved)
    hash_neutral: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about its data when it is built (never the labels' values)."""

    feature_dims: dict[str, int]  # modality -> flattened input width (e.g. {"image": 128, "text": 10})
    input_shapes: dict[str, tuple[int, ...]]  # modality -> per-sample shape (e.g. (3, 32, 32) for raw images)
    num_labels: int
    num_train: int
    card: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One optimiser update of a batch, for stages whose batches take several updates in turn.

    ``loss(batch)`` returns the same kind of dict as ``Stage.loss``; after its backward pass only the parameters of
    ``groups`` are updated (gradients that reached the stage's other groups are discarded). Every step uses the
    stage's one optimizer, so each parameter keeps one momentum / weight-decay state across the steps - exactly what
    one optimizer per group, each stepped when its group is named, gives (DGCPN's released ``opt_I`` / ``opt_T``).
    Steps run in order on the same batch; a step may use tensors an earlier step of the same batch computed.
    """

    name: str
    loss: Callable[[Batch], dict[str, torch.Tensor]]
    groups: tuple[str, ...]


@dataclass
class Stage:
    """One phase of training.

    ``loss(batch)`` returns a dict of scalar tensors: ``"loss"`` (what is back-propagated) plus every named term
    (logged separately). ``groups`` are the parameter-group names optimised in this stage, each with the learning
    rate ``param_groups()`` gives it. ``steps``: instead of ``loss``, a sequence of :class:`Step` - each batch then
    takes one optimiser update per step, in order (``loss`` must be None); the terms of step ``s`` are logged as
    ``s/<term>`` and ``loss`` as the sum of the steps' losses.
    """

    name: str
    epochs: int
    loss: Callable[[Batch], dict[str, torch.Tensor]] | None
    groups: list[str]
    batch_size: int = 32
    optimizer: Literal["sgd", "adam"] = "sgd"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)  # momentum, weight_decay, betas ...
    # MultiStepLR-style schedule: milestones counted in `schedule_unit`s, multiplied by `gamma` at each
    schedule_milestones: tuple[int, ...] = ()
    schedule_gamma: float = 0.1
    schedule_unit: Literal["epoch", "iter"] = "epoch"
    # the parameter groups the schedule applies to (None: all of the stage's groups; the others keep their lr)
    schedule_groups: tuple[str, ...] | None = None
    max_rows: int | None = None  # train on the first `max_rows` training rows only (e.g. UCMFH's 4,992)
    drop_last: bool = False
    grad_clip: float | None = None
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if self.steps:
            if self.loss is not None:
                raise ValueError(f"stage '{self.name}': give either loss or steps, not both")
            names = [s.name for s in self.steps]
            if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
                raise ValueError(f"stage '{self.name}': step names must be distinct, non-empty and without '/', "
                                 f"got {names}")
            for s in self.steps:
                unknown = sorted(set(s.groups) - set(self.groups))
                if not s.groups or unknown:
                    raise ValueError(f"stage '{self.name}': step '{s.name}' must update some of the stage's groups "
                                     f"{list(self.groups)}, got {list(s.groups)}")
        elif self.loss is None:
            raise ValueError(f"stage '{self.name}': needs a loss or a sequence of steps")


@dataclass(frozen=True)
class ExtraEvaluation:
    """An evaluation a method offers besides uni-modal retrieval (e.g. the UCMFH family's pair-input mAP); a config
    names it in ``eval.extra_evaluations``. ``run(method, data, eval_cfg, device)`` returns ``{task: {metric:
    value}}``; the engine runs it after the main evaluation and stores it, with ``description``, in results.json's
    ``protocols`` block under its name."""

    description: str
    run: Callable[[Any, Any, Any, Any], dict[str, dict[str, float]]]


class HashMethod(torch.nn.Module):
    """Base class of every method in methods/. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""  # full citation
    Params: ClassVar[type[Params]] = Params
    supervised: ClassVar[bool] = False
    output: ClassVar[Literal["hash", "embedding"]] = "hash"  # "embedding": real-valued (VSE++), eval by cosine
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")
    # where listings and report tables put the method (methods/__init__.py FAMILY_ORDER), then by name
    family: ClassVar[str] = ""
    # settings that make a tiny, fast instance for the registry-wide tests (tests/test_method_contract.py and the
    # stage-term, multi-process and bounds tests run every registered method with them; the batch size is set by
    # each test); the paper's values stay the Params defaults
    smoke_params: ClassVar[dict[str, Any]] = {}
    # Whether a trained run rebuilt from its directory (engine ``load_run``: eval, index build, search, reports)
    # calls ``prepare(train)`` again before the checkpoint loads. True, the default, is safe for any method (one from
    # a user's module may keep what ``encode`` reads in a plain attribute). A method sets False where everything
    # ``prepare`` fits that ``encode`` reads is a persistent buffer, restored from the checkpoint anyway: loading
    # then skips ``prepare``, so training-only artefacts (DGCPN's n x n graph) are not rebuilt and the train
    # split is not loaded into memory. tests/test_method_contract.py checks the claim for every registered method.
    prepare_on_load: ClassVar[bool] = True

    def __init__(self, params: Params, bits: int, info: DataInfo):
        super().__init__()
        self.params = params
        self.bits = bits
        self.info = info

    # --- training -------------------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, dict[str, Any]]:
        """name -> {"params": iterable of parameters, "lr": float, optional "weight_decay"}."""
        raise NotImplementedError

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def prepare(self, train: "Any") -> None:  # noqa: D401 - hook
        """Optional: called once with the training Split (numpy) before the stages (closed-form fits, caches); on a
        resume again; on loading a trained run only with ``prepare_on_load``."""

    # --- inference ------------------------------------------------------------------------------------------
    @property
    def code_width(self) -> int:
        """Columns of ``encode``'s output: the code length (an embedding method: its embedding width)."""
        return self.bits

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Continuous codes (N, bits) for one modality's inputs alone; the engine takes the sign."""
        raise NotImplementedError

    # the method's own extra evaluations that ``eval.extra_evaluations`` may name, by name, e.g. the UCMFH family's
    # ``ucmfh-pair-input`` (methods/families/pair_input.py, through the batch hook ``encode_pair(image, text, ...)``)
    extra_evaluations: ClassVar[dict[str, ExtraEvaluation]] = {}

    @property
    def hamming_metrics(self) -> bool:
        """Whether the signs of ``encode``'s outputs are evaluated as binary codes (Hamming ranking). Hash methods:
        always; an embedding method (VSE++) when its settings train it for codes."""
        return self.output == "hash"

    def diagnostics(self, batch: Batch, labels: torch.Tensor | None) -> dict[str, float]:
        """Optional: scalars logged at every evaluation (labels given here only for monitoring)."""
        return {}
