"""Flickr8k captions (Hodosh, Young, Hockenmaier, JAIR 2013): `Flickr8k.token.txt` (`<image>#<k>\t<caption>`, k =
0..4) + `Flickr_8k.trainImages.txt` / `Flickr_8k.devImages.txt` / `Flickr_8k.testImages.txt` (one image name a line).

Only names present in the token file are kept (some copies of the lists carry extra names without captions), which
gives the official 6,000 / 1,000 / 1,000 images. One row per caption: id = image index * 5 + k (image index = order
of first appearance in the token file), side columns `group` (image index), `caption`, `image_name`. No labels
(0 label columns): relevance is the image group. Images only when `--images DIR` is given (Flicker8k_Dataset/).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, inside_root, require_file, text_only_note
from bitrieve.data.source import Source
from bitrieve.data.types import DataError

_LINE = re.compile(r"^(\S+)#(\d+)\s+(.*)$")


def read(path: str, images: str | None = None, **_: object) -> Source:
    root = Path(path)
    tok = require_file(root / "Flickr8k.token.txt", "Flickr8k captions, lines `<image>.jpg#<k>\\t<caption>`")
    lists = {s: require_file(root / f"Flickr_8k.{s}Images.txt", f"Flickr8k {s} split, one image name per line")
             for s in ("train", "dev", "test")}
    order: dict[str, int] = {}
    caps: dict[tuple[str, int], str] = {}
    for i, line in enumerate(tok.read_text().splitlines()):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise DataError(f"{tok}:{i + 1}: expected `<image>#<k>\\t<caption>`, got {line[:80]!r}")
        name, k = m.group(1), int(m.group(2))
        order.setdefault(name, len(order))
        if (name, k) in caps:
            raise DataError(f"{tok}:{i + 1}: duplicate caption {name}#{k}")
        caps[(name, k)] = m.group(3).strip()
    split_of: dict[str, str] = {}
    for s, f in lists.items():
        for name in f.read_text().split():
            if name in order:  # lists may carry names without captions: keep only captioned images
                if name in split_of:
                    raise DataError(f"{name} is in both {split_of[name]} and {s} split lists")
                split_of[name] = s
    rows = sorted((order[n], k, n) for (n, k) in caps if n in split_of)
    ids = np.array([i * 5 + k for i, k, _ in rows], dtype=np.int64)
    official = np.array([{"dev": "dev"}.get(split_of[n], split_of[n]) for _, _, n in rows])
    inputs = {}
    files = [tok, *lists.values()]
    if images:
        img_root = Path(images)
        missing = [n for n in dict.fromkeys(n for _, _, n in rows)
                   if not inside_root(img_root, n, f"{tok} image name").is_file()]
        if missing:
            raise DataError(f"{img_root}: {len(missing)} Flickr8k images missing, e.g. {missing[0]}")
        inputs["image"] = ImageSource([n for _, _, n in rows], root=img_root, description="Flickr8k JPEG photos")
    card = {"name": "flickr8k", "version": "Flickr8k (Hodosh et al. 2013) official split, captioned images only",
            "source": str(root), "sha256": hashes(*files), "label_names": [],
            "caption_data": "one row per caption; group = image index; no labels (relevance = same image)",
            "citation": "Hodosh, Young, Hockenmaier, JAIR 47:853-899, 2013", **text_only_note(images)}
    return Source(inputs, np.zeros((len(rows), 0), dtype=np.uint8), ids, card, official,
                  {"group": np.array([i for i, _, _ in rows], dtype=np.int64),
                   "caption": np.array([caps[(n, k)] for _, k, n in rows]),
                   "image_name": np.array([n for _, _, n in rows])})
