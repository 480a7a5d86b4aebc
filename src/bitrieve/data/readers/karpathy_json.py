"""Karpathy split JSON (Karpathy & Fei-Fei, CVPR 2015; `dataset_coco.json`, `dataset_flickr30k.json`,
`dataset_flickr8k.json`): {"images": [{"filename", "imgid", "split": train|val|test|restval, "sentences":
[{"raw", "tokens", "sentid"}], optional "filepath", "cocoid"}], "dataset": name}.

One row per sentence: id = sentid, `group` = imgid. Official split: train (restval joins train, as in VSE++'s
"1C/5C" COCO setting), val -> "dev", test -> "test". No labels in these files (0 label columns). Images only with
`--images DIR` (path = DIR/[filepath/]filename).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, inside_root, text_only_note
from bitrieve.data.source import Source
from bitrieve.data.types import DataError
from bitrieve.errors import read_json_file

_SPLIT = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


def read(path: str, images: str | None = None, **_: object) -> Source:
    p = Path(path)
    if p.is_dir():
        cands = sorted(p.glob("dataset_*.json"))
        if not cands:
            raise DataError(f"missing file {p}/dataset_<name>.json: Karpathy split JSON with images[].sentences[]")
        p = cands[0]
    if not p.is_file():
        raise DataError(f"missing file {p}: Karpathy split JSON (dataset_coco.json / dataset_flickr30k.json)")
    d = read_json_file(p, DataError, "the file is truncated or corrupt")
    if "images" not in d:
        raise DataError(f"{p}: no key 'images' (keys: {sorted(d)})")
    ids, group, caps, official, refs = [], [], [], [], []
    for im in d["images"]:
        for key in ("filename", "imgid", "split", "sentences"):
            if key not in im:
                raise DataError(f"{p}: image entry without '{key}': {str(im)[:120]}")
        if im["split"] not in _SPLIT:
            raise DataError(f"{p}: image {im['imgid']} has split '{im['split']}' (expected {sorted(_SPLIT)})")
        ref = str(Path(im.get("filepath", "")) / im["filename"])
        for s in im["sentences"]:
            ids.append(s["sentid"])
            group.append(im["imgid"])
            caps.append(s.get("raw") or " ".join(s["tokens"]))
            official.append(_SPLIT[im["split"]])
            refs.append(ref)
    inputs = {}
    if images:
        root = Path(images)
        missing = [r for r in dict.fromkeys(refs) if not inside_root(root, r, f"{p} images[].filename").is_file()]
        if missing:
            raise DataError(f"{root}: {len(missing)} images missing, e.g. {root / missing[0]}")
        inputs["image"] = ImageSource(refs, root=root, description=f"{d.get('dataset', p.stem)} photos")
    card = {"name": f"{d.get('dataset', p.stem)}-karpathy", "version": f"Karpathy split {p.name}",
            "source": str(p), "sha256": hashes(p), "label_names": [],
            "caption_data": "one row per sentence; group = imgid; no labels (relevance = same image)",
            "citation": "Karpathy & Fei-Fei, CVPR 2015", **text_only_note(images)}
    return Source(inputs, np.zeros((len(ids), 0), dtype=np.uint8), np.array(ids, dtype=np.int64), card,
                  np.array(official), {"group": np.array(group, dtype=np.int64), "caption": np.array(caps)})
