"""Latency: lookup tables, the native predictor and the differentiable expected latency."""
from __future__ import annotations

from typing import Any

from .ofa_import import import_ofa_tables
from .predictor import LatencyPredictor
from .table import SCHEMA_VERSION, LatencyTable, make_metadata


def __getattr__(name: str) -> Any:
    if name == "expected_latency":  # imports torch: only when asked for
        from .expected import expected_latency

        return expected_latency
    raise AttributeError(f"module 'hwnas.latency' has no attribute {name!r}")


__all__ = ["LatencyTable", "LatencyPredictor", "expected_latency", "import_ofa_tables", "make_metadata", "SCHEMA_VERSION"]
