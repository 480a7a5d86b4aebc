"""Lazy image inputs: files on disk or members of a zip, decoded on demand (PIL), so readers never unpack archives."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from bitrieve.data.types import DataError
from bitrieve.optional import require
from bitrieve.errors import reading


class ImageSource:
    """A sequence of images addressed by ``refs`` (file paths, or member names inside ``zip_path``).

    ``arrays``: alternatively the images themselves, uint8 (N, H, W, C) or (N, H, W).
    """

    def __init__(self, refs: list[str] | None = None, root: str | Path | None = None,
                 zip_paths: list[str | Path] | None = None, arrays: np.ndarray | None = None,
                 description: str = "") -> None:
        self.refs = list(refs) if refs is not None else None
        self.root = Path(root) if root is not None else None
        self.zip_paths = [Path(p) for p in zip_paths] if zip_paths else None
        self.arrays = arrays
        self.description = description
        self._zips: dict[Path, zipfile.ZipFile] = {}
        self._member_zip: dict[str, Path] | None = None

    def __len__(self) -> int:
        return len(self.arrays) if self.arrays is not None else len(self.refs)

    def __getitem__(self, rows: np.ndarray) -> "ImageSource":
        rows = np.asarray(rows, dtype=np.int64)
        if self.arrays is not None:
            return ImageSource(arrays=self.arrays[rows], description=self.description)
        return ImageSource([self.refs[i] for i in rows], self.root, self.zip_paths, description=self.description)

    def _zip_for(self, member: str) -> zipfile.ZipFile:
        if self._member_zip is None:
            self._member_zip = {}
            for p in self.zip_paths:
                with reading(p, "a zip archive of images", DataError):
                    z = self._zips.setdefault(p, zipfile.ZipFile(p))
                for n in z.namelist():
                    self._member_zip[n] = p
        if member not in self._member_zip:
            raise DataError(f"image '{member}' not found in {[str(p) for p in self.zip_paths]}")
        return self._zips[self._member_zip[member]]

    def load(self, i: int):
        """Image ``i`` as an RGB PIL image."""
        Image = require("PIL.Image", "reading images")
        if self.arrays is not None:
            a = self.arrays[i]
            return Image.fromarray(a).convert("RGB")
        ref = self.refs[i]
        if self.zip_paths:
            z = self._zip_for(ref)
            where = f"{z.filename}:{ref}"
            with reading(where, "a zip member holding an image", DataError):
                data = z.read(ref)  # a bad CRC or a corrupt deflate stream fails here
            with reading(where, "an image file (JPEG, PNG, ...)", DataError):
                return Image.open(io.BytesIO(data)).convert("RGB")
        path = self.root / ref if self.root is not None else Path(ref)
        if not path.is_file():
            raise DataError(f"image file {path} not found")
        with reading(path, "an image file (JPEG, PNG, ...)", DataError):
            with Image.open(path) as im:
                return im.convert("RGB")

    def pixels(self, size: int | None = None, progress: bool = True) -> np.ndarray:
        """All images as uint8 (N, 3, H, W); ``size`` resizes (bilinear) to size×size, else all must agree."""
        return PixelRows(self, np.arange(len(self)), size, progress).read_rows(0, len(self))


class PixelRows:
    """The images ``order`` (indices into ``source``) as uint8 rows (n, C, H, W), decoded only when `read_rows` asks
    for them: conversion writes a block of decoded images into the store's split files and drops it before decoding
    the next (data/store.py `RowSelection`), so memory holds a block, never the dataset. ``size`` resizes (bilinear)
    to size x size; without it every image must have the first one's shape. In-memory uint8 arrays without ``size``
    are taken as they are (lossless: grey stays one channel); everything else goes through PIL as RGB."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, source: ImageSource, order: np.ndarray, size: int | None = None,
                 progress: bool = True) -> None:
        self.source, self.order, self.size = source, np.asarray(order, dtype=np.int64), size
        self._lossless = isinstance(source.arrays, np.ndarray) and size is None
        self._progress, self._bar, self._done = progress, None, 0
        self.shape: tuple[int, ...] = (0, 3, size or 0, size or 0)
        if len(self.order):  # the first image gives the shape, known before any split file is created
            self.shape = (len(self.order),) + self._decode(self.order[:1], first=True).shape[1:]

    def __len__(self) -> int:
        return self.shape[0]

    def _decode(self, idx: np.ndarray, first: bool = False) -> np.ndarray:
        if self._lossless:
            a = self.source.arrays[idx]
            return np.ascontiguousarray(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2), dtype=np.uint8)
        out = None
        for j, i in enumerate(idx):
            im = self.source.load(int(i))
            if self.size is not None and im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), resample=2)  # 2 = bilinear
            a = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
            if out is None:
                out = np.empty((len(idx),) + a.shape, dtype=np.uint8)
            expected = out.shape[1:] if first else self.shape[1:]
            if a.shape != expected:
                name = f"'{self.source.refs[i]}'" if self.source.refs else int(i)
                raise DataError(f"image {name} has shape {a.shape}, earlier images {expected}; pass --image-size "
                                "to resize")
            out[j] = a
        return out if out is not None else np.empty((0,) + self.shape[1:], np.uint8)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Images ``order[start:stop]`` decoded, as uint8 (stop - start, C, H, W)."""
        from bitrieve.console import progress as progress_bar

        if self._bar is None:
            self._bar = progress_bar(total=len(self), desc="decode images", enabled=self._progress, unit="img")
        out = self._decode(self.order[start:stop])
        self._bar.update(len(out))
        self._done += len(out)
        if self._done >= len(self):  # a pass is complete (a second pass gets a bar of its own)
            self._bar.close()
            self._bar, self._done = None, 0
        return out
