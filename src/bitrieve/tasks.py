"""The retrieval tasks: task name -> (query modality, database modality).

The one map every layer imports (eval's metrics, the engine's evaluation, the report's retrieval examples): I→T
ranks the text database for image queries, T→I the image database for text queries; I→I and T→T stay within one
modality. It lives at the package top (like ``config.py``) so importing it loads nothing else.
"""

from __future__ import annotations

TASKS: dict[str, tuple[str, str]] = {
    "i2t": ("image", "text"),
    "t2i": ("text", "image"),
    "i2i": ("image", "image"),
    "t2t": ("text", "text"),
}
