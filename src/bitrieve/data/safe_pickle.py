"""Restricted unpickling: release files that come as pickles (UCMFH `*.pkl`, CIFAR-10 python batches) are read
without ever executing code.

Only numpy array reconstruction, numpy dtypes/scalars and plain builtins (dict, list, tuple, set, str, bytes,
int, float, complex, bool, slice, range) may be named by the pickle; any other global - `os.system`,
`builtins.eval`, a class from some module - is refused with `UnsafePickleError` naming it.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from bitrieve.data.types import DataError

_ALLOWED: dict[str, set[str]] = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "complex",
                 "bool", "slice", "range"},
    "__builtin__": {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
                    "complex", "bool", "slice", "range", "unicode", "long"},
    "copy_reg": {"_reconstructor"},  # python-2 pickles of ndarray subclasses route through it
    "copyreg": {"_reconstructor"},
    "_codecs": {"encode"},  # protocol <= 2 pickles of bytes: encode(str, "latin1"); pure function
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
}


class UnsafePickleError(DataError):
    """The pickle names a global outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, where: str, **kw: Any) -> None:
        super().__init__(file, **kw)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            if module == "copy_reg" or module == "copyreg":
                import copyreg

                fn = copyreg._reconstructor
                return _guard_reconstructor(fn, self.where)
            if module in ("__builtin__",):
                import builtins

                return getattr(builtins, {"unicode": "str", "long": "int"}.get(name, name))
            return super().find_class(module, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)  # numpy>=2 pickles dtypes as numpy.dtypes.Float32DType etc.
        raise UnsafePickleError(f"{self.where}: refused to unpickle global '{module}.{name}' (only numpy arrays, "
                                "dicts, lists and builtin scalars are allowed; a pickle naming anything else could "
                                "run code)")


def _guard_reconstructor(fn: Any, where: str) -> Any:
    import numpy as np

    def safe(cls: Any, base: Any, state: Any) -> Any:
        is_array = isinstance(cls, type) and issubclass(cls, np.ndarray)
        if not is_array or base not in (object, np.ndarray):
            raise UnsafePickleError(f"{where}: refused copyreg._reconstructor for {cls!r}")
        return fn(cls, base, state)
    return safe


def safe_load(path: str | Path, encoding: str = "ASCII") -> Any:
    """Unpickle ``path`` with the allow-list; ``encoding="bytes"`` / "latin1" for python-2 pickles (CIFAR batches)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, str(path), encoding=encoding).load()
        except DataError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError,
                UnicodeDecodeError, MemoryError) as e:  # a truncated or damaged stream
            raise DataError(f"{path}: truncated or corrupt pickle ({type(e).__name__}: {e}); download the file "
                            "again") from None


def safe_loads(data: bytes, where: str = "<bytes>", encoding: str = "ASCII") -> Any:
    return RestrictedUnpickler(io.BytesIO(data), where, encoding=encoding).load()
