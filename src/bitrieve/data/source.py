"""`Source`: what a reader found in a release (all rows, before a protocol splits them) and its validation.

Readers return a `Source`; `convert.build` validates it, applies a protocol (seeded split), optionally extracts
features, and returns a `CrossModalData` ready for `store.save_store`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.types import DataError

Input = Union[np.ndarray, ImageSource]
EMPTY_LABEL_POLICIES = ("drop", "fail", "keep")


@dataclass
class Source:
    """All rows of a release. ``inputs``: modality -> (N, ...) array or lazy `ImageSource`; ``labels`` (N, C) 0/1
    (C may be 0 for unlabelled caption data); ``ids`` (N,) stable int64; ``official``: per-row split name from the
    release itself (e.g. "train"/"test"), or None; ``extras``: side columns (e.g. ``group`` = image of a caption);
    ``card``: name, version, source files, sha256, label_names, feature descriptions.
    """

    inputs: dict[str, Input]
    labels: np.ndarray
    ids: np.ndarray
    card: dict[str, Any]
    official: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def name(self) -> str:
        return str(self.card.get("name", "<dataset>"))

    def subset(self, rows: np.ndarray) -> "Source":
        rows = np.asarray(rows, dtype=np.int64)
        return Source({m: a.subset(rows) if hasattr(a, "read_rows") else a[rows] for m, a in self.inputs.items()},
                      self.labels[rows], self.ids[rows], self.card,
                      None if self.official is None else self.official[rows],
                      {k: a[rows] for k, a in self.extras.items()})


def validate_source(src: Source, empty_labels: str = "fail") -> Source:
    """Check a reader's output; return it (rows without any label dropped when ``empty_labels="drop"``).

    Errors name the dataset and what is wrong: row counts that disagree, labels not 0/1, NaN/inf (counted), duplicate
    ids. Rows with no label: "fail" (error with their count), "drop" (removed, a warning gives the count, and the card
    records it), "keep".
    """
    if empty_labels not in EMPTY_LABEL_POLICIES:
        raise DataError(f"empty-label policy '{empty_labels}': choose one of {EMPTY_LABEL_POLICIES}")
    name, n = src.name, len(src)
    if src.ids.ndim != 1:
        raise DataError(f"{name}: ids must be 1-d, got shape {src.ids.shape}")
    uniq, counts = np.unique(src.ids, return_counts=True)
    if len(uniq) != n:
        dup = uniq[counts > 1]
        raise DataError(f"{name}: {int((counts - 1).sum())} duplicate ids (e.g. {dup[:5].tolist()})")
    if src.labels.ndim != 2 or src.labels.shape[0] != n:
        raise DataError(f"{name}: labels have shape {src.labels.shape}, expected ({n}, C) to match {n} ids")
    for m, a in src.inputs.items():
        if len(a) != n:
            raise DataError(f"{name}: modality '{m}' has {len(a)} rows, labels/ids have {n}")
        if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating):
            bad = int((~np.isfinite(a)).sum())
            if bad:
                rows = int((~np.isfinite(a.reshape(n, -1))).any(1).sum())
                raise DataError(f"{name}: modality '{m}' has {bad} NaN/inf values in {rows} rows")
    for k, a in src.extras.items():
        if a.shape[0] != n:
            raise DataError(f"{name}: side column '{k}' has {a.shape[0]} rows, expected {n}")
    if src.labels.dtype.kind not in "biuf":
        raise DataError(f"{name}: labels hold {src.labels.dtype} values, expected 0/1 numbers")
    if src.labels.dtype.kind == "f" and not np.isfinite(src.labels).all():
        rows = np.flatnonzero(~np.isfinite(src.labels).all(1))
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise DataError(f"{name} ({src.card.get('source', '?')}): NaN in labels, rows {shown} ({len(rows)} of {n} "
                        "rows; row = position in the release)")
    if src.labels.size and not np.isin(src.labels, (0, 1)).all():
        vals = np.unique(src.labels)
        raise DataError(f"{name}: labels must be 0/1 multi-hot, found values {vals[:10].tolist()}")
    src.labels = src.labels.astype(np.uint8, copy=False)
    if src.labels.shape[1] == 0:
        return src  # unlabelled (caption data): relevance comes from the image group
    empty = src.labels.sum(1) == 0
    n_empty = int(empty.sum())
    if n_empty and empty_labels == "fail":
        raise DataError(f"{name}: {n_empty} of {n} rows have no label (use --empty-labels drop to remove them, or "
                        "keep to keep them)")
    if n_empty and empty_labels == "drop":
        if n_empty == n:  # nothing would be left to split: an error, not an empty store
            raise DataError(f"{name}: all {n} rows have no label; --empty-labels drop would leave an empty dataset")
        warnings.warn(f"{name}: dropped {n_empty} of {n} rows that have no label", stacklevel=2)
        src = src.subset(np.flatnonzero(~empty))
        src.card = {**src.card, "dropped_empty_label_rows": n_empty}
    return src
