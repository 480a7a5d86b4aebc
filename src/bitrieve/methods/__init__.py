"""The method registry: a method class registers itself where it is defined, ``@register_method("djsrh")``.

Lookups are lazy, so that ``bitrieve --help`` imports no method and one broken optional method never breaks the
others:

- ``get_method(name)`` imports ``bitrieve.methods.<name>`` (a built-in method lives in the module of its name) and
  returns the class that module registered. Only when that finds nothing does it import every module of
  :data:`METHOD_MODULES` and of the ``BITRIEVE_METHOD_MODULES`` environment variable.
- A module that fails to import is skipped and remembered; its error is raised only when its own name is looked up,
  and listed in the "unknown method" message otherwise.
- ``REGISTRY`` is a mapping name -> class. Iterating it (``list(REGISTRY)``, ``sorted(REGISTRY)``) lists the
  built-in names in :data:`METHOD_MODULES` order (the order report tables use) without importing them, then every
  other registered name (the ``BITRIEVE_METHOD_MODULES`` modules are imported for that).

Methods outside the package (a user's own, the tests' ``toy_linear``) register with the same decorator in their own
module; for the command line, name that module in ``BITRIEVE_METHOD_MODULES`` (comma-separated, importable from
``sys.path``), e.g. ``BITRIEVE_METHOD_MODULES=my_hashing bitrieve train my.yaml``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator, MutableMapping

# The modules that define the built-in methods (each registers the method of its own name), in table order.
METHOD_MODULES = ("cca_itq", "agch", "ucmfh", "ucmfh_variant", "djsrh", "jdsh", "dgcpn", "agch_fusion_balanced",
                  "greedyhash", "dsh", "vsepp")
ENV_MODULES = "BITRIEVE_METHOD_MODULES"


class MethodRegistry(MutableMapping):
    """name -> method class, filled by :func:`register_method` as method modules are imported."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self.failed: dict[str, str] = {}  # module -> "ErrorType: message" of a module that did not import

    def register(self, name: str, cls: type) -> None:
        old = self._classes.get(name)
        if old is not None and f"{old.__module__}.{old.__qualname__}" != f"{cls.__module__}.{cls.__qualname__}":
            raise ValueError(f"method name '{name}' is registered twice: {old.__module__}.{old.__qualname__} and "
                             f"{cls.__module__}.{cls.__qualname__}")
        self._classes[name] = cls

    def _import(self, module: str) -> None:
        """Import ``module``; a failure is remembered in :attr:`failed`, not raised."""
        if module in self.failed:
            return
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time error of an optional method: report it when asked for
            self.failed[module] = f"{type(exc).__name__}: {exc}"

    def import_all(self) -> None:
        for m in METHOD_MODULES:
            self._import(f"bitrieve.methods.{m}")
        self._import_env()

    def _import_env(self) -> None:
        for m in os.environ.get(ENV_MODULES, "").split(","):
            if m.strip():
                self._import(m.strip())

    def __getitem__(self, name: str) -> type:
        if name not in self._classes and isinstance(name, str) and name.isidentifier():
            module = f"bitrieve.methods.{name}"
            if importlib.util.find_spec(module) is not None:
                self._import(module)
                if module in self.failed:
                    raise KeyError(f"method '{name}' could not be imported ({module}: {self.failed[module]})")
        if name not in self._classes:
            self.import_all()
        if name not in self._classes:
            broken = "".join(f"; {m} failed to import ({e})" for m, e in self.failed.items())
            raise KeyError(f"unknown method '{name}'; known methods: {', '.join(sorted(self._classes))}{broken}")
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def _names(self) -> list[str]:
        self._import_env()
        builtin = [n for n in METHOD_MODULES if f"bitrieve.methods.{n}" not in self.failed]
        return builtin + [n for n in self._classes if n not in builtin]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __setitem__(self, name: str, cls: type) -> None:  # tests register throw-away methods (monkeypatch.setitem)
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]


REGISTRY = MethodRegistry()


def register_method(name: str):
    """Class decorator: register a :class:`~bitrieve.methods.base.HashMethod` subclass under ``name`` (its config
    ``method:`` value). The class's ``name`` attribute must be the same name."""

    def deco(cls: type) -> type:
        if getattr(cls, "name", name) != name:
            raise ValueError(f"@register_method('{name}') on {cls.__qualname__}, whose name is '{cls.name}'")
        REGISTRY.register(name, cls)
        return cls

    return deco


def get_method(name: str) -> type:
    """The method class registered under ``name``; KeyError listing the known names (and modules that failed to
    import) otherwise."""
    return REGISTRY[name]
