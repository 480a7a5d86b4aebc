"""In-memory dataset type shared by every method: per split, per-modality inputs, multi-hot labels, stable ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitrieve.errors import BitrieveError

SPLITS = ("train", "query", "retrieval")
MODALITIES = ("image", "text")


class DataError(BitrieveError, ValueError):
    """Bad dataset content; the message names the file/split/key and what was expected."""


@dataclass
class Split:
    """One split: ``inputs[modality]`` arrays with N rows, ``labels`` (N, C) multi-hot uint8, ``ids`` (N,) int64.

    ``extras``: row-aligned side columns that are not modalities, e.g. ``text_lengths`` of padded caption tokens and
    ``group`` (the image a caption belongs to, for Recall@K with 5 captions per image).
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self)
        if getattr(self.extras, "checked_on_open", False):
            return  # a store's lazy columns check their row count when first opened (data/store.py)
        for k, a in self.extras.items():
            if a.shape[0] != n:
                raise DataError(f"extra column '{k}' has {a.shape[0]} rows, ids have {n}")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def subset(self, rows: np.ndarray) -> "Split":
        return Split({m: a[rows] for m, a in self.inputs.items()}, self.labels[rows], self.ids[rows],
                     {k: a[rows] for k, a in self.extras.items()})


@dataclass
class CrossModalData:
    """A dataset: ``splits`` name -> Split, plus the dataset ``card`` (name, source, counts, sha256 of inputs...).

    Single-modal datasets are the same type with one modality. Validated on construction.
    """

    splits: dict[str, Split]
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.card.get("name", "<dataset>")
        if not self.splits:
            raise DataError(f"{name}: no splits")
        modalities = None
        n_labels = None
        for split_name, split in self.splits.items():
            where = f"{name}/{split_name}"
            n = len(split)
            if split.ids.ndim != 1:
                raise DataError(f"{where}: ids must be 1-d, got shape {split.ids.shape}")
            if len(np.unique(split.ids)) != n:
                raise DataError(f"{where}: ids are not unique ({n - len(np.unique(split.ids))} duplicates)")
            if split.labels.ndim != 2 or split.labels.shape[0] != n:
                raise DataError(f"{where}: labels must have shape ({n}, C), got {split.labels.shape}")
            if n_labels is None:
                n_labels = split.labels.shape[1]
            elif split.labels.shape[1] != n_labels:
                raise DataError(f"{where}: {split.labels.shape[1]} label columns, other splits have {n_labels}")
            if not np.isin(split.labels, (0, 1)).all():
                raise DataError(f"{where}: labels must be 0/1 multi-hot")
            mods = tuple(sorted(split.inputs))
            if modalities is None:
                modalities = mods
            elif mods != modalities:
                raise DataError(f"{where}: modalities {mods} differ from other splits {modalities}")
            if getattr(split.inputs, "checked_on_open", False):
                continue  # a store's lazy arrays: row count checked when opened, values at conversion + sha256
            for m, arr in split.inputs.items():
                if arr.shape[0] != n:
                    raise DataError(f"{where}: modality '{m}' has {arr.shape[0]} rows, ids have {n}")
                if np.issubdtype(arr.dtype, np.floating):
                    bad = int((~np.isfinite(arr)).sum())
                    if bad:
                        raise DataError(f"{where}: modality '{m}' has {bad} NaN/inf values")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted(next(iter(self.splits.values())).inputs))

    @property
    def num_labels(self) -> int:
        return int(next(iter(self.splits.values())).labels.shape[1])

    def feature_dim(self, modality: str) -> int:
        arr = next(iter(self.splits.values())).inputs[modality]
        return int(np.prod(arr.shape[1:]))

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise DataError(f"{self.card.get('name', '<dataset>')}: no split '{split}' (have {sorted(self.splits)})")
        return self.splits[split]


def card_bytes(card: dict[str, Any]) -> bytes:
    """``card.json`` as the engine writes it into a run directory (sorted keys, 2-space indent, final newline)."""
    return (json.dumps(card, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def card_sha256(card: dict[str, Any]) -> str:
    """sha256 of ``card.json`` exactly as written (``sha256sum card.json`` gives the same); results.json records it
    as ``dataset_card_sha256``."""
    return hashlib.sha256(card_bytes(card)).hexdigest()
