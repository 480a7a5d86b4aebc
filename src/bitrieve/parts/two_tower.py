"""Two-tower similarity-preserving hashing in feature mode (DJSRH, JDSH, DGCPN): one MLP hash network per modality.

Each tower is x -> Linear(d, hidden) -> ReLU -> [Dropout] -> Linear(hidden, bits) -> tanh(α ·), trained so that the
codes' cosines reproduce a batch similarity target; the methods differ only in the target and the objective, which
they own. α = √(epoch + 1) is DJSRH's / JDSH's released schedule (``set_alpha``); DGCPN keeps α = 1.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from bitrieve.parts.encoders import MLPHashEncoder

MODALITIES = ("image", "text")


class TwoTowerEncoders(nn.ModuleDict):
    """``{"image": MLPHashEncoder, "text": MLPHashEncoder}`` (d_m -> hidden -> bits), with the codes of one modality.

    ``dropout`` > 0 drops out the hidden layer before the hash layer (DGCPN's released nets); it is a functional
    dropout, so the state-dict keys are those of the two encoders alone (``image.body.0.weight``, ``image.hash.fc.*``).
    """

    def __init__(self, widths: Mapping[str, int], hidden: int, bits: int, dropout: float = 0.0):
        super().__init__({m: MLPHashEncoder(int(widths[m]), [hidden], bits) for m in MODALITIES})
        self.dropout = float(dropout)

    def codes(self, modality: str, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """tanh(α · W₂ dropout(ReLU(W₁ x))) for (N, d) float inputs (already standardised if the method does)."""
        if modality not in MODALITIES:
            raise ValueError(f"two-tower encoders: unknown modality '{modality}' (image | text)")
        enc = self[modality]
        hidden = enc.body(x)
        if self.dropout > 0:
            hidden = F.dropout(hidden, self.dropout, self.training)
        return torch.tanh(alpha * enc.hash.fc(hidden))

    def param_groups(self, lr_image: float, lr_text: float) -> dict[str, dict]:
        """One optimiser group per tower, each on its own learning rate (all three released scripts)."""
        return {"image": {"params": list(self["image"].parameters()), "lr": lr_image},
                "text": {"params": list(self["text"].parameters()), "lr": lr_text}}


def sqrt_epoch_alpha(steps_done: int, steps_per_epoch: int) -> float:
    """α = √(epoch + 1) with epoch = ⌊steps done / steps per epoch⌋ (DJSRH ``models.py`` ``set_alpha``, once per
    epoch). Counting optimisation steps (a checkpointed buffer) makes α survive a resume."""
    return math.sqrt(int(steps_done) // max(1, int(steps_per_epoch)) + 1.0)
