"""Seeds derived from (run seed, stage, epoch), so that no result depends on RNG state carried across a restart.

Every epoch starts by reseeding ``torch``, ``numpy`` and ``random`` from ``derive_seed(seed, stage, epoch)`` and by
drawing its batch order from a fresh ``torch.Generator`` seeded the same way. A run resumed from the checkpoint of
epoch e therefore draws exactly what an uninterrupted run draws in epoch e + 1.
"""

from __future__ import annotations

import random

import numpy as np
import torch

# fixed tags so that the streams for model init, batch order and per-epoch global RNGs never coincide
INIT, SHUFFLE, EPOCH = 0x1A17, 0x5AFF, 0xE90C


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from the run seed and integer keys (numpy SeedSequence: well mixed, platform independent)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *(int(k) & 0xFFFFFFFF for k in keys)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def seed_epoch(seed: int, stage: int, epoch: int) -> torch.Generator:
    """Reseed the global RNGs for (stage, epoch) and return the generator that draws this epoch's batch order."""
    seed_everything(derive_seed(seed, EPOCH, stage, epoch))
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, SHUFFLE, stage, epoch))
    return g


def batch_order(n: int, batch_size: int, generator: torch.Generator, drop_last: bool = False,
                shuffle: bool = True) -> list[torch.Tensor]:
    """Row indices of each mini-batch of one epoch (a random permutation of ``range(n)`` cut into batches)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    batches = list(torch.split(order, batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    return batches
