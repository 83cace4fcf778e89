"""hwnas: hardware-aware neural architecture search.

Spaces are imported eagerly (pure Python); the native latency core and torch-based parts load on first
use so that ``import hwnas`` stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .space import Arch, OpSignature, SearchSpace, get_space, list_spaces, register_space

__version__ = "0.1.0"

_LAZY = {
    "LatencyTable": "hwnas.latency",
    "LatencyPredictor": "hwnas.latency",
    "expected_latency": "hwnas.latency",
    "import_ofa_tables": "hwnas.latency",
    "OFAMobileNetV3": "hwnas.nn",
    "save_supernet": "hwnas.nn",
    "load_supernet": "hwnas.nn",
    "recalibrate_bn": "hwnas.nn",
}

__all__ = ["Arch", "OpSignature", "SearchSpace", "get_space", "list_spaces", "register_space", "__version__",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
