"""MS-COCO official JSON (Lin et al., ECCV 2014; captions: Chen et al., arXiv:1504.00325).

Directory layout (as downloaded from cocodataset.org): `annotations/captions_<split><year>.json` (images[],
annotations[] of {image_id, id, caption}) and `annotations/instances_<split><year>.json` (categories[] of 80 with
ids 1..90 *with gaps*, annotations[] with image_id, category_id), images in `<split><year>/<file_name>`; split in
{train, val}, year 2017 or 2014. Labels: 80-d multi-hot, column = position of the category in `categories[]` (file
order), not the raw id. Caption data representation: one row per caption (id = caption annotation id), side
columns `group` (= COCO image id), `caption` (raw text); the image input repeats per caption row. Official split:
train -> "train", val -> "test".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, inside_root, require_file
from bitrieve.data.source import Source
from bitrieve.data.types import DataError
from bitrieve.errors import read_json_file


def _load(path: Path) -> dict:
    return read_json_file(path, DataError, "the file is truncated or corrupt")


def read(path: str, labels_only: bool = False, **_: object) -> Source:
    root = Path(path)
    ann = root / "annotations"
    found = [(s, y) for y in ("2017", "2014") for s in ("train", "val") if (ann / f"captions_{s}{y}.json").is_file()]
    if not found:
        raise DataError(f"missing file {ann}/captions_train2017.json (or val2017 / 2014): COCO captions JSON with "
                        "images[] and annotations[] {image_id, id, caption}")
    rows_caption, rows_id, rows_group, rows_ref, rows_split, label_rows, rows_file = [], [], [], [], [], [], []
    names: list[str] | None = None
    files = []
    for s, y in found:
        cap_f = ann / f"captions_{s}{y}.json"
        inst_f = require_file(ann / f"instances_{s}{y}.json", f"COCO instances JSON for {s}{y} (categories[] and "
                              "annotations[] with category_id), needed for the 80-d labels")
        files += [cap_f, inst_f]
        caps, inst = _load(cap_f), _load(inst_f)
        cats = [c["id"] for c in inst["categories"]]
        these = [c["name"] for c in inst["categories"]]
        if names is not None and these != names:
            raise DataError(f"{inst_f}: categories[] differ from the other split's")
        names = these
        col = {cid: j for j, cid in enumerate(cats)}
        images = {im["id"]: im for im in caps["images"]}
        lab: dict[int, np.ndarray] = {i: np.zeros(len(cats), np.uint8) for i in images}
        for a in inst["annotations"]:
            if a["image_id"] in lab:
                if a["category_id"] not in col:
                    raise DataError(f"{inst_f}: annotation {a['id']} has category_id {a['category_id']} not in "
                                    "categories[]")
                lab[a["image_id"]][col[a["category_id"]]] = 1
        for a in sorted(caps["annotations"], key=lambda a: (a["image_id"], a["id"])):
            if a["image_id"] not in images:
                raise DataError(f"{cap_f}: caption {a['id']} refers to image {a['image_id']} not in images[]")
            rows_caption.append(a["caption"].strip())
            rows_id.append(a["id"])
            rows_group.append(a["image_id"])
            file_name = str(images[a["image_id"]]["file_name"])
            if Path(file_name).is_absolute():
                raise DataError(f"{cap_f}: images[].file_name {file_name!r} (image {a['image_id']}) must be a name "
                                f"relative to {s}{y}/, not an absolute path")
            rows_ref.append(f"{s}{y}/{file_name}")
            rows_file.append(cap_f)
            rows_split.append("train" if s == "train" else "test")
            label_rows.append(lab[a["image_id"]])
    inputs = {}
    if not labels_only:
        for r, split_file in dict.fromkeys(zip(rows_ref, rows_file)):
            inside_root(root, r, f"{split_file} images[].file_name")  # no '..', absolute path or escaping link
        missing = [r for r in dict.fromkeys(rows_ref) if not (root / r).is_file()]
        if missing:
            raise DataError(f"{root}: {len(missing)} image files missing, e.g. {root / missing[0]} (COCO JPEG named in "
                            "captions images[].file_name); use --labels-only for captions+labels without images")
        inputs["image"] = ImageSource(rows_ref, root=root, description="COCO JPEG photos")
        files += [root / r for r in dict.fromkeys(rows_ref)]
    card = {"name": "coco-mini" if len(set(rows_group)) < 1000 else "coco", "version": "MS-COCO official JSON "
            + ", ".join(f"{s}{y}" for s, y in found), "source": str(root), "sha256": hashes(*files),
            "label_names": names, "caption_data": "one row per caption; group = COCO image id; image input repeated",
            "citation": "Lin et al., ECCV 2014; Chen et al., arXiv:1504.00325"}
    return Source(inputs, np.array(label_rows, dtype=np.uint8), np.array(rows_id, dtype=np.int64), card,
                  np.array(rows_split), {"group": np.array(rows_group, dtype=np.int64),
                                         "caption": np.array(rows_caption)})
