"""Readers of real release formats. Each ``read(path, **options) -> Source``; `READERS` maps the `--from` names.

A reader only reads and checks what the release contains; splitting is the split recipe's job (data/splits.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bitrieve.data.source import Source
from bitrieve.data.types import DataError


@dataclass(frozen=True)
class ReaderInfo:
    module: str
    default_split: str  # split recipe (data/splits.py)
    summary: str


READERS: dict[str, ReaderInfo] = {
    "wiki": ReaderInfo("wiki_mat", "wiki", "Wiki wiki_data.mat (MATLAB v7.3, SCRATCH release)"),
    "wiki-raw": ReaderInfo("wiki_raw", "wiki", "Wiki original SVCL layout: raw_features.mat + *_txt_img_cat.list"),
    "mirflickr25k": ReaderInfo("djsrh_mat", "mirflickr25k", "MIRFlickr-25K DJSRH/DCMH .mat release (LAll/YAll/IAll)"),
    "nuswide10": ReaderInfo("djsrh_mat", "nuswide10", "NUS-WIDE top-10 DJSRH/DCMH .mat release"),
    "mscoco-mat": ReaderInfo("djsrh_mat", "mscoco", "MS-COCO in the DJSRH/DCMH .mat family (prefix given by user)"),
    "ucmfh": ReaderInfo("ucmfh_pkl", "official", "UCMFH train.pkl/query.pkl/retrieval.pkl (restricted unpickler)"),
    "cifar10-python": ReaderInfo("cifar_python", "cifar10-1", "CIFAR-10 python batches (cifar-10-batches-py/)"),
    "cifar10-jpg": ReaderInfo("cifar_jpg", "cifar10-1", "CIFAR-10 (JPEG copy): class-folder JPEGs in two zips"),
    "mnist": ReaderInfo("mnist_idx", "mnist-test", "MNIST IDX files (t10k-*, optionally train-*)"),
    "image-folder": ReaderInfo("image_folder", "official", "images in class folders, or a label file"),
    "coco": ReaderInfo("coco_json", "official-captions", "COCO official JSON: captions_*.json + instances_*.json"),
    "karpathy": ReaderInfo("karpathy_json", "official-captions", "Karpathy split JSON (dataset_coco/flickr30k.json)"),
    "flickr8k": ReaderInfo("flickr8k", "official-captions", "Flickr8k.token.txt + Flickr_8k.*Images.txt"),
}


def get_reader(fmt: str):
    if fmt not in READERS:
        raise DataError(f"unknown format '{fmt}' (known: {', '.join(READERS)})")
    return importlib.import_module(f"bitrieve.data.readers.{READERS[fmt].module}")


def read_source(fmt: str, path: str, **options) -> Source:
    """Read release ``path`` in format ``fmt``; ``options`` are reader-specific (see each module)."""
    mod = get_reader(fmt)
    return mod.read(path, fmt=fmt, **options)
