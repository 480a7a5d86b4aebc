"""Strict numbers for every config model: a boolean is not a number.

pydantic (lax mode) turns ``true`` into 1 for an ``int`` field and 1.0 for a ``float`` field, so ``--set bits=true``
or ``params.epochs: yes`` silently meant 1. :class:`StrictNumbers` refuses a boolean (also inside a list) wherever
the field's type does not itself accept ``bool``; everything else (``1`` for a float, ``1e-3`` written as a YAML
float) validates as before.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return any(_accepts_bool(a) for a in typing.get_args(annotation))


def _has_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    return isinstance(v, (list, tuple)) and any(_has_bool(x) for x in v)


def _describe(annotation: Any) -> str:
    """A type as a user reads it: ``list[int]``, ``float | None`` (ranges declared with Annotated left out)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _describe(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_describe(a) for a in args)
    if origin is not None and args:
        return f"{origin.__name__}[{', '.join('...' if a is Ellipsis else _describe(a) for a in args)}]"
    if isinstance(annotation, type):
        return "None" if annotation is type(None) else annotation.__name__
    return str(annotation).replace("typing.", "")


class StrictNumbers(BaseModel):
    """Base model: a boolean is refused for a field that does not accept ``bool`` (module docstring)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: Any, info: ValidationInfo) -> Any:
        if _has_bool(v) and info.field_name in cls.model_fields:
            annotation = cls.model_fields[info.field_name].annotation
            if not _accepts_bool(annotation):
                raise ValueError(f"a boolean is not accepted here (expected {_describe(annotation)})")
        return v

