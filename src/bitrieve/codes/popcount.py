"""The one popcount of the package (numba), used by eval's ranking kernels and the index's exact search."""

from __future__ import annotations

import numba as nb
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S4 = np.uint64(4)
_S56 = np.uint64(56)


@nb.njit(inline="always", cache=True)
def popcount64(x):
    """Set bits of a uint64 (returned as uint64). The classic SWAR popcount; LLVM recognises the idiom and emits the
    hardware (vector) popcount instructions where the CPU has them."""
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return (x * _H01) >> _S56
