"""The method registry: a method class registers itself where it is defined, ``@register_method("djsrh")``; that
decorator is the whole registration.

Where methods come from:

- built-in: every module of this package (found by scanning it; ``base`` and the ``families`` package hold no
  method). A built-in method ``name`` lives in ``methods/<name>.py``;
- installed packages: the ``bitrieve.methods`` entry-point group (``[project.entry-points."bitrieve.methods"]
  my_method = "my_package.my_method"`` in the package's pyproject.toml; the entry point names the module that
  registers the method), the way pytest plugins are found;
- a module on ``sys.path`` named in the ``BITRIEVE_METHOD_MODULES`` environment variable (comma-separated), e.g.
  ``BITRIEVE_METHOD_MODULES=my_hashing bitrieve train my.yaml``; the tests' ``toy_linear`` comes this way.

Lookups are lazy, so that ``bitrieve --help`` imports no method and one broken optional method never breaks the
others: ``get_method(name)`` imports ``bitrieve.methods.<name>`` and returns the class it registered; only when that
finds nothing are the other sources imported. A module that fails to import is skipped and remembered; its error is
raised when its own name is looked up, and listed in the "unknown method" message otherwise.

``REGISTRY`` is a mapping name -> class. Listing it (``list(REGISTRY)``) imports every source and gives the names in
one defined order, the order report tables use: by family (:data:`FAMILY_ORDER`, then any other family by name), then
by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
from collections.abc import Iterator, MutableMapping

ENV_MODULES = "BITRIEVE_METHOD_MODULES"
ENTRY_POINT_GROUP = "bitrieve.methods"
# the families' places in listings and report tables (a method's ``family`` class attribute)
FAMILY_ORDER = ("cross-modal hashing", "image hashing", "image-text matching")
_NOT_METHODS = {"base"}  # modules of this package that define no method (packages such as families/ are skipped)


def builtin_modules() -> list[str]:
    """The modules of this package that define methods, found by scanning it."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.ispkg and not m.name.startswith("_") and m.name not in _NOT_METHODS)


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
        for m in builtin_modules():
            self._import(f"{__name__}.{m}")
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._import(ep.value.split(":")[0])  # the module registers its method(s) when imported
        for m in os.environ.get(ENV_MODULES, "").split(","):
            if m.strip():
                self._import(m.strip())

    def __getitem__(self, name: str) -> type:
        if name not in self._classes and isinstance(name, str) and name.isidentifier():
            module = f"{__name__}.{name}"
            if name not in _NOT_METHODS and importlib.util.find_spec(module) is not None:
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
        self.import_all()

        def key(name: str) -> tuple:
            family = getattr(self._classes[name], "family", "")
            rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
            return rank, family, name

        return sorted(self._classes, key=key)

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
