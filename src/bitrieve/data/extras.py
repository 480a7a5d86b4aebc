"""Side columns of a split (``Split.extras``): caption lengths, the image group of a caption, ...

Kept as a module because readers and the engine import these names; `SplitWithExtras` is `Split` itself now that
`Split` carries ``extras``.
"""

from __future__ import annotations

import numpy as np

from bitrieve.data.types import Split

SplitWithExtras = Split


def extras_of(split: Split) -> dict[str, np.ndarray]:
    """Side columns of a split ({} when it has none)."""
    return dict(split.extras)
