"""Registry of methods: name -> "module:Class". Imported lazily so a broken optional method never breaks others."""

from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
    "cca_itq": "bitrieve.methods.cca_itq:CCAITQ",
    "agch": "bitrieve.methods.agch:AGCH",
    "ucmfh": "bitrieve.methods.ucmfh:UCMFH",
    "ucmfh_variant": "bitrieve.methods.ucmfh_variant:UCMFHVariant",
    "djsrh": "bitrieve.methods.djsrh:DJSRH",
    "jdsh": "bitrieve.methods.jdsh:JDSH",
    "dgcpn": "bitrieve.methods.dgcpn:DGCPN",
    "agch_fusion_balanced": "bitrieve.methods.agch_fusion_balanced:AGCHFusionBalanced",
    "greedyhash": "bitrieve.methods.greedyhash:GreedyHash",
    "dsh": "bitrieve.methods.dsh:DSH",
    "vsepp": "bitrieve.methods.vsepp:VSEPP",
}


def get_method(name: str):
    """Return the method class registered under ``name`` (clear error listing the known names)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method '{name}'; known methods: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)
