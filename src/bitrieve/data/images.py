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
        from bitrieve.console import progress as progress_bar

        if isinstance(self.arrays, np.ndarray) and size is None:  # lossless: stored pixels, grey stays 1 channel
            a = self.arrays
            return np.ascontiguousarray(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2), dtype=np.uint8)
        out = None
        for i in progress_bar(range(len(self)), desc="decode images", enabled=progress, unit="img"):
            im = self.load(i)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), resample=2)  # 2 = bilinear
            a = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
            if out is None:
                out = np.empty((len(self),) + a.shape, dtype=np.uint8)
            elif a.shape != out.shape[1:]:
                name = self.refs[i] if self.refs else i
                raise DataError(f"image {i} ({name}) has shape {a.shape}, earlier images "
                                f"{out.shape[1:]}; pass --image-size to resize")
            out[i] = a
        if out is None:
            return np.empty((0, 3, size or 0, size or 0), dtype=np.uint8)
        return out
