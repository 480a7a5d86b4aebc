"""The DCMH/DJSRH `.mat` release family (Jiang & Li, CVPR 2017; Su et al., ICCV 2019, and followers JDSH, DGCPN,
AGCH): one file per variable, named `<prefix>-lall.mat` (LAll: N x C multi-hot labels), `<prefix>-yall.mat` (YAll:
N x T binary tag bag-of-words), and the image side either as raw images `<prefix>-iall.mat` (IAll, MATLAB v7.3,
N images 224 x 224 x 3 uint8) or as precomputed features `<prefix>-iall-vgg.mat` / `<prefix>-xall-vgg.mat` (XAll,
N x 4096). Known prefixes and sizes:

- `mirflickr25k` (MIRFlickr-25K cleaned set): N = 20,015, C = 24, T = 1,386 (our real copy; ../shared/data/
  mirflickr25k/SOURCE.md).
- `nus-wide-tc10` (NUS-WIDE top-10 concepts): N = 186,577, C = 10, T = 1,000 (DJSRH/JDSH settings files use
  `nus-wide-tc10-{lall,yall,iall}.mat`; DCMH-style code `nus-wide-tc10-xall-vgg.mat`).
- MS-COCO: releases of this family differ; give `--prefix` (e.g. `mscoco`), sizes are then only checked for
  agreement between files.

Rows are pairs in file order; id = row index. `labels_only=True` loads labels + tags without any image file
(inspection / text-only use).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, require_file
from bitrieve.data.readers.matfile import H5ImageArray, H5Rows, load_mat_array, open_mat_rows
from bitrieve.data.source import Source
from bitrieve.data.types import DataError

KNOWN = {
    "mirflickr25k": {"prefix": "mirflickr25k", "rows": 20015, "labels": 24, "tags": 1386,
                     "version": "MIRFlickr-25K cleaned 20,015 pairs, 24 labels, 1,386 tags (DCMH/DJSRH release)",
                     "citation": "Huiskes & Lew, ACM MIR 2008; release: DCMH (Jiang & Li, CVPR 2017), "
                                 "DJSRH (Su et al., ICCV 2019)"},
    "nuswide10": {"prefix": "nus-wide-tc10", "rows": 186577, "labels": 10, "tags": 1000,
                  "version": "NUS-WIDE top-10 concepts, 186,577 pairs, 1,000 tags (DCMH/DJSRH release)",
                  "citation": "Chua et al., CIVR 2009; release: DCMH (CVPR 2017), DJSRH (ICCV 2019)"},
    "mscoco-mat": {"prefix": "mscoco", "rows": None, "labels": None, "tags": None,
                   "version": "MS-COCO in the DCMH/DJSRH .mat layout (prefix given by the user)",
                   "citation": "Lin et al., ECCV 2014; release: DJSRH-family code"},
}
MIRFLICKR_LABELS = ["animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake",
                    "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset",
                    "transport", "tree", "water"]


def read(path: str, fmt: str = "mirflickr25k", prefix: str | None = None, labels_only: bool = False,
         **_: object) -> Source:
    spec = KNOWN[fmt]
    pre = prefix or spec["prefix"]
    root = Path(path)
    n_txt = f"{spec['rows']:,} x " if spec["rows"] else "N x "
    lall = require_file(root / f"{pre}-lall.mat", f"labels, key LAll ({n_txt}{spec['labels'] or 'C'} multi-hot)")
    yall = require_file(root / f"{pre}-yall.mat", f"tag bag-of-words, key YAll ({n_txt}{spec['tags'] or 'T'} binary)")
    labels = load_mat_array(lall, "LAll", "multi-hot labels")
    tags = open_mat_rows(yall, "YAll", "tag bag-of-words")  # v7.3: read by row blocks when the store is written
    files = [lall, yall]
    n = labels.shape[0]
    if spec["rows"] and n != spec["rows"]:
        raise DataError(f"{lall}: LAll has {n} rows, the {fmt} release has {spec['rows']}")
    if spec["labels"] and labels.shape[1] != spec["labels"]:
        raise DataError(f"{lall}: LAll has {labels.shape[1]} label columns, the {fmt} release has {spec['labels']} "
                        "(another version of the dataset? e.g. MIRFlickr 24 vs 38 labels)")
    if tags.shape[0] != n:
        raise DataError(f"row counts disagree: {lall.name} LAll {n} rows, {yall.name} YAll {tags.shape[0]} rows")
    if spec["tags"] and tags.shape[1] != spec["tags"]:
        raise DataError(f"{yall}: YAll has {tags.shape[1]} columns, the {fmt} release has {spec['tags']}")
    inputs: dict = {"text": _binary_as_uint8(tags)}
    features = {"text": f"{tags.shape[1]}-d binary tag bag-of-words (YAll)"}
    if not labels_only:
        raw, vgg = root / f"{pre}-iall.mat", [root / f"{pre}-iall-vgg.mat", root / f"{pre}-xall-vgg.mat"]
        vgg_found = [p for p in vgg if p.is_file()]
        if vgg_found:
            x = open_mat_rows(vgg_found[0], "XAll", "image features")
            if x.shape[0] != n:
                raise DataError(f"row counts disagree: {vgg_found[0].name} XAll {x.shape[0]} rows, LAll {n}")
            if isinstance(x, H5Rows):
                x.out_dtype = np.dtype(np.float32)  # narrowed block by block as the store is written
            else:
                x = x.astype(np.float32, copy=False)  # no copy when the release holds float32 already
            inputs["image"] = x
            features["image"] = f"{x.shape[1]}-d precomputed features XAll from {vgg_found[0].name}"
            files.append(vgg_found[0])
        elif raw.is_file():
            arr = H5ImageArray(raw, "IAll")
            if len(arr) != n:
                raise DataError(f"row counts disagree: {raw.name} IAll {len(arr)} images, LAll {n}")
            inputs["image"] = ImageSource(arrays=arr, description=f"{fmt} raw images from {raw.name}")
            files.append(raw)
        else:
            raise DataError(f"missing image file in {root}: expected {raw.name} (key IAll: the {n:,} raw images, "
                            f"224x224x3 uint8, MATLAB v7.3, from the DCMH/DJSRH release) or {vgg[0].name} / "
                            f"{vgg[1].name} (key XAll: {n:,} x 4096 VGG features). Labels and tags were found; pass "
                            "--labels-only to load them without the image side")
    card = {"name": fmt if fmt != "mscoco-mat" else "mscoco", "version": spec["version"], "source": str(root),
            "sha256": hashes(*files), "citation": spec["citation"], "features": features,
            "label_names": MIRFLICKR_LABELS if fmt == "mirflickr25k" else None,
            "label_names_note": "the .mat release stores no names; assumed: the 24 MIRFlickr annotation concepts in "
                                "alphabetical order (unverified)" if fmt == "mirflickr25k" else None,
            "modalities_missing": [] if not labels_only else ["image"]}
    return Source(inputs, labels, np.arange(n, dtype=np.int64), card)  # validate_source checks NaN and 0/1


def _binary_as_uint8(tags):
    """Binary tags as uint8 (the store keeps them narrow and widens them per batch on load); other values as
    float32. A v7.3 array stays lazy (its values are checked by row blocks)."""
    if isinstance(tags, H5Rows):
        tags.out_dtype = np.dtype(np.uint8) if tags.is_binary() else np.dtype(np.float32)
        return tags
    if np.isin(tags, (0, 1)).all():
        return tags.astype(np.uint8, copy=False)
    return tags.astype(np.float32, copy=False)
