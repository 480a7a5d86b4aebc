"""Readers for real release formats, the canonical store, split recipes, feature extraction.

See docs/datasets.md. Convert a release once (`bitrieve data convert` / `bitrieve features`), then everything reads
the canonical store through `load_data(path)` / `bitrieve.data.store.load_store`.
"""

from __future__ import annotations

from pathlib import Path

from bitrieve.data.types import MODALITIES, SPLITS, CrossModalData, DataError, Split


def load_data(spec: str) -> CrossModalData:
    """Load a dataset for training/evaluation: ``"wiki"`` (embedded copy) or the path of a canonical store."""
    if spec == "wiki":
        from bitrieve.data.wiki import read_wiki_mat

        return read_wiki_mat()
    path = Path(spec)
    if path.is_dir():
        from bitrieve.data.store import load_store  # canonical store (data/store.py)

        return load_store(path)
    raise DataError(f"data '{spec}': not 'wiki' and not a canonical store directory "
                    "(convert a release with `bitrieve data convert --from FORMAT SRC --to DIR`)")


__all__ = ["CrossModalData", "Split", "DataError", "SPLITS", "MODALITIES", "load_data"]
