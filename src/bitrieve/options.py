"""Argparse types for numeric command-line options: the one range check every numeric option goes through (an
out-of-range value is one line naming the option, the range and the value, before anything runs)."""

from __future__ import annotations

import argparse
import math


def int_option(lo: int, hi: int | None = None):
    """An argparse ``type`` for an integer option in [lo, hi]: the one range check of every numeric CLI option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {rng} (got {value})")
        return value

    parse.__name__ = "integer"
    return parse


def positive_float_option(text: str) -> float:
    """An argparse ``type`` for a finite float > 0 (e.g. a time limit in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (got {text})")
    return value
