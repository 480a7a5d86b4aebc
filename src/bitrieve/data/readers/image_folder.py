"""A generic image collection: either class folders (`ROOT/<class>/<image>`, label = folder, classes sorted) or a
label file `ROOT/labels.txt` with lines `<relative image path>\t<label>[,<label>...]` (multi-label allowed; class
names = sorted union). An optional `ROOT/splits.txt` (`<relative path>\t<train|query|retrieval>`) gives the split
for protocol "official"; without it, use a seeded protocol. Ids = row index in sorted path order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.source import Source
from bitrieve.data.types import DataError

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def read(path: str, **_: object) -> Source:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of images")
    label_file = root / "labels.txt"
    entries: list[tuple[str, list[str]]] = []
    if label_file.is_file():
        for i, line in enumerate(label_file.read_text().splitlines()):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{label_file}:{i + 1}: expected `<path>\\t<label>[,<label>]`, got {line!r}")
            if not (root / parts[0]).is_file():
                raise DataError(f"{label_file}:{i + 1}: image {root / parts[0]} not found")
            entries.append((parts[0], [t.strip() for t in parts[1].split(",") if t.strip()]))
    else:
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in EXTS and p.parent != root:
                entries.append((str(p.relative_to(root)), [p.relative_to(root).parts[0]]))
        if not entries:
            raise DataError(f"{root}: no images in class folders and no labels.txt")
    entries.sort()
    names = sorted({t for _, ts in entries for t in ts})
    col = {t: j for j, t in enumerate(names)}
    labels = np.zeros((len(entries), len(names)), dtype=np.uint8)
    for i, (_, ts) in enumerate(entries):
        labels[i, [col[t] for t in ts]] = 1
    official = None
    split_file = root / "splits.txt"
    if split_file.is_file():
        sp = dict(line.split("\t") for line in split_file.read_text().splitlines() if line.strip())
        missing = [r for r, _ in entries if r not in sp]
        if missing:
            raise DataError(f"{split_file}: no split for {len(missing)} images, e.g. {missing[0]}")
        official = np.array([sp[r].strip() for r, _ in entries])
    card = {"name": root.name, "version": "image folder", "source": str(root), "label_names": names,
            "sha256": {}}
    refs = [r for r, _ in entries]
    return Source({"image": ImageSource(refs, root=root, description=f"images under {root.name}")}, labels,
                  np.arange(len(entries), dtype=np.int64), card, official)
