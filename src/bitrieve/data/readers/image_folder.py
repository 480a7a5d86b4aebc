"""A generic image collection: either class folders (`ROOT/<class>/<image>`, label = folder, classes sorted) or a
label file `ROOT/labels.txt` with lines `<relative image path>\t<label>[,<label>...]` (multi-label allowed; class
names = sorted union). An optional `ROOT/splits.txt` (`<relative path>\t<train|query|retrieval>`) gives the split
for protocol "official"; without it, use a seeded protocol. Ids = row index in sorted path order. Paths that
resolve outside ROOT (absolute, ``..``, symbolic links leaving it) are refused; the card records the sha256 of the
label/split files and one combined digest of every image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, inside_root, tsv_rows
from bitrieve.data.source import Source
from bitrieve.data.types import DataError
from bitrieve.data.wiki import sha256_file

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _images_sha256(root: Path, entries: list[tuple[str, list[str]]]) -> str:
    """One digest over every image: sha256 of the lines ``<relative path>\t<sha256 of the file>`` in path order."""
    h = hashlib.sha256()
    for rel, _ in entries:
        h.update(f"{rel}\t{sha256_file(root / rel)}\n".encode())
    return h.hexdigest()


def read(path: str, **_: object) -> Source:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of images")
    label_file = root / "labels.txt"
    entries: list[tuple[str, list[str]]] = []
    if label_file.is_file():
        for where, (ref, tags) in tsv_rows(label_file, 2, "<path>\\t<label>[,<label>]"):
            if not inside_root(root, ref, where).is_file():
                raise DataError(f"{where}: image {root / ref} not found")
            entries.append((ref, [t.strip() for t in tags.split(",") if t.strip()]))
    else:
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in EXTS and p.parent != root:
                rel = str(p.relative_to(root))
                inside_root(root, rel, f"{root} (class folders)")  # a symbolic link may point outside the root
                entries.append((rel, [p.relative_to(root).parts[0]]))
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
        sp = dict(parts for _, parts in tsv_rows(split_file, 2, "<path>\\t<train|query|retrieval>"))
        missing = [r for r, _ in entries if r not in sp]
        if missing:
            raise DataError(f"{split_file}: no split for {len(missing)} images, e.g. {missing[0]}")
        official = np.array([sp[r].strip() for r, _ in entries])
    sources = [f for f in (label_file, split_file) if f.is_file()]
    card = {"name": root.name, "version": "image folder", "source": str(root), "label_names": names,
            "sha256": {**hashes(*sources), f"{len(entries)} images (combined)": _images_sha256(root, entries)}}
    refs = [r for r, _ in entries]
    return Source({"image": ImageSource(refs, root=root, description=f"images under {root.name}")}, labels,
                  np.arange(len(entries), dtype=np.int64), card, official)
