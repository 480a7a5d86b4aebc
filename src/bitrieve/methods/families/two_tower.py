"""Two-tower similarity-preserving hashing (feature mode): the family body of DJSRH, JDSH and DGCPN.

One MLP hash tower per modality (parts/two_tower.py), optional input standardisation (parts/standardize.py), codes
B = tanh(α · h) and one SGD stage whose loss makes the codes' cosines reproduce a batch similarity target. A method
implements ``target(batch)`` (its similarity matrix, computed without gradient) and ``objective(code_image,
code_text, target)`` (its loss terms); the rest is here.
"""

from __future__ import annotations

from typing import Literal

import torch

from bitrieve.methods.base import Count, DataInfo, HashMethod, NonNegative, Params, Positive, Probability, Stage
from bitrieve.parallel import rowwise
from bitrieve.parts.standardize import fit_standardization, register_standardization, standardize
from bitrieve.parts.two_tower import MODALITIES, TwoTowerEncoders, sqrt_epoch_alpha


class TwoTowerParams(Params):
    """The fields of every two-tower method; each method gives its released learning rates and epochs (the fields
    without a default here) and its own terms."""

    hidden: Count = 4096  # the MLP's hidden width (the released text network's 4,096)
    # feature mode only (not in the papers): "standardize" z-scores each input dimension with training statistics
    # before the MLP (the released nets saw CNN fc7 activations / raw BoW counts, far larger than e.g. Wiki's
    # unit-scale SIFT/LDA vectors, on which a 4,096-wide MLP starts with near-constant outputs). The similarity
    # target always uses the raw features.
    input_norm: Literal["none", "standardize"] = "none"
    lr_image: Positive
    lr_text: Positive
    momentum: Probability = 0.9
    weight_decay: NonNegative = 5e-4
    batch_size: Count = 32
    epochs: Count


class TwoTowerHashing(HashMethod):
    """Subclasses set ``Params`` (a :class:`TwoTowerParams`; ``alpha_schedule`` for the √(epoch+1) schedule) and
    implement ``target`` and ``objective``. ``dropout``: DGCPN's dropout before the hash layer."""

    family = "cross-modal hashing"
    smoke_params = {"hidden": 32}
    # prepare fits the standardisation buffers (checkpointed); DGCPN's graph is a training target only
    prepare_on_load = False

    def __init__(self, params, bits: int, info: DataInfo, dropout: float = 0.0):
        super().__init__(params, bits, info)
        self.encoders = TwoTowerEncoders(info.feature_dims, params.hidden, bits, dropout=dropout)
        register_standardization(self, {m: info.feature_dims[m] for m in MODALITIES})  # identity until prepare
        # optimisation steps taken, saved with the checkpoint, so α(epoch) survives a resume
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def prepare(self, train) -> None:
        if self.params.input_norm == "standardize":
            fit_standardization(self, train.inputs, MODALITIES)

    def alpha(self) -> float:
        """√(epoch + 1) with ``alpha_schedule`` (DJSRH/JDSH ``set_alpha``), else 1."""
        if not self.params.alpha_schedule:
            return 1.0
        return sqrt_epoch_alpha(self.steps_done, self.info.num_train // self.params.batch_size)  # drop_last

    def codes(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """B = tanh(α · h) of one modality's (standardised) inputs (split across ranks under torchrun)."""
        alpha = self.alpha()
        return rowwise(lambda rows: self.encoders.codes(modality, standardize(self, modality, rows), alpha), x,
                       modules=[self.encoders])

    encode = codes

    def _loss(self, batch) -> dict[str, torch.Tensor]:
        """One update: the target without gradient, then the method's objective on both towers' codes."""
        with torch.no_grad():
            s = self.target(batch)
        out = self.objective(self.codes("image", batch["image"]), self.codes("text", batch["text"]), s)
        if self.training:
            self.steps_done += 1
        return out

    def param_groups(self):
        return self.encoders.param_groups(self.params.lr_image, self.params.lr_text)

    def stage_kwargs(self) -> dict:
        """SGD with momentum and weight decay, the method's batch size, the last incomplete batch dropped."""
        p = self.params
        return dict(batch_size=p.batch_size, optimizer="sgd", drop_last=True,
                    optimizer_kwargs={"momentum": p.momentum, "weight_decay": p.weight_decay})

    def stages(self) -> list[Stage]:
        return [Stage("main", self.params.epochs, self._loss, ["image", "text"], **self.stage_kwargs())]

    def target(self, batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement target(batch)")

    def objective(self, code_image, code_text, s) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement objective(code_image, code_text, s)")
