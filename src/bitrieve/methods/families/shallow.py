"""Shallow single-modal image hashing: the family body of LSH, PCAH, ITQ and SH.

What they share: image features only, no labels, no gradient training (``stages()`` is empty, ``prepare`` fits the
closed form on the training split), features centred by the training mean (buffer ``image_mean``; the released
demos centre the whole data set first), the fitted matrices kept in float64 buffers so that a checkpoint restores
the codes exactly, and a random draw seeded by ``params.seed`` or, when it is None, by the run seed through torch's
generator. A method adds its buffers, its fit (``fit``) and its code function (``project``).
"""

from __future__ import annotations

import numpy as np
import torch

from bitrieve.errors import TooFewItems
from bitrieve.methods.base import DataInfo, HashMethod


class ShallowHashing(HashMethod):
    family = "image hashing"
    modalities = ("image",)
    supervised = False
    min_items = 2  # a covariance of fewer rows is undefined (LSH, which fits none, needs 1)
    prepare_on_load = False  # the whole fit is buffers (mean, projections, rotation): loading a run re-fits nothing

    def __init__(self, params, bits: int, info: DataInfo):
        super().__init__(params, bits, info)
        self.dim = int(info.feature_dims["image"])
        self.register_buffer("image_mean", torch.zeros(self.dim, dtype=torch.float64))

    def param_groups(self):
        return {}

    def stages(self):
        return []

    def buffer(self, name: str, *shape: int) -> None:
        """A float64 buffer filled by ``fit`` (float64: the codes of a restored checkpoint are the fitted ones)."""
        self.register_buffer(name, torch.zeros(*shape, dtype=torch.float64))

    def rng(self) -> np.random.Generator:
        seed = getattr(self.params, "seed", None)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())  # the run seed decides (the engine seeds torch)
        return np.random.default_rng(seed)

    def prepare(self, train) -> None:
        n = len(train)
        if n < self.min_items:
            raise TooFewItems(f"{self.name}: the closed-form fit needs at least {self.min_items} training items, "
                              f"got {n}")
        x = np.asarray(train.inputs["image"], dtype=np.float64).reshape(n, -1)
        mean = x.mean(0) if getattr(self.params, "centre", True) else np.zeros(self.dim)
        self.image_mean.copy_(torch.from_numpy(mean))
        self.fit(x - mean)

    def fit(self, x: np.ndarray) -> None:
        """Fill the method's buffers from the centred training features ``x`` (n, d), float64."""
        raise NotImplementedError

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous codes (N, bits) of centred features ``z`` (float64); the engine takes the sign."""
        raise NotImplementedError

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality != "image":
            raise ValueError(f"{self.name} is single-modal (image); got modality '{modality}'")
        z = x.reshape(x.shape[0], -1).to(torch.float64) - self.image_mean
        return self.project(z).to(torch.float32)
