"""``LatencyPredictor``: a (space, table) pair compiled into dense native arrays.

Predicting one arch is a handful of table reads in C++ (``fixed[r] + Σ active blocks``, then the
table's calibration). ``expected`` gives the exact expected latency and its gradient under independent
categorical distributions over each choice, which is what gradient-based search needs.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import _C
from ..space import Arch, SearchSpace
from .table import LatencyTable

ArchesLike = np.ndarray | Iterable[Arch | Mapping[str, Any]] | Arch | Mapping[str, Any]


class LatencyPredictor:
    """Latency (ms) of archs of ``space`` on the device ``table`` was measured on.

    Resolutions the table does not cover are refused (``served_resolutions`` lists the others); a table
    that covers a resolution only partly raises ``KeyError`` listing the missing op keys. Pass
    ``resolutions=`` to demand specific resolutions.
    """

    def __init__(self, space: SearchSpace, table: LatencyTable, resolutions: Sequence[int] | None = None) -> None:
        self.space = space
        self.table = table
        layout = space.lut_layout()
        try:
            self._native = _C.Predictor(
                table._native, layout["resolutions"], layout["fixed_keys"], layout["block_keys"],
                layout["B"], layout["K"], layout["E"], layout["G"], layout["D"],
                layout["block_stage"], layout["block_position"], layout["depth_values"],
                [int(r) for r in resolutions] if resolutions else [],
                layout["fixed_io"], layout["block_io"], layout["fixed_params"], layout["block_params"],
            )
        except KeyError as missing:
            mismatch = space_mismatch(table, space)
            if mismatch:
                raise ValueError(f"{mismatch}; {missing.args[0] if missing.args else missing}") from None
            raise

    @property
    def served_resolutions(self) -> list[int]:
        return list(self._native.served_resolutions)

    @property
    def resolution_mask(self) -> np.ndarray:
        """Boolean mask over ``space.resolutions``: True where this predictor can answer."""
        served = set(self.served_resolutions)
        return np.array([r in served for r in self.space.resolutions])

    @property
    def calibration(self) -> dict[str, float]:
        """The calibration in force: latency ≈ Σ ops (scale·mean + per_op + per_element·io + per_param·params) + offset."""
        return dict(self._native.calibration)

    def codes(self, archs: ArchesLike) -> np.ndarray:
        """int32 codes for archs or dicts; an integer array passes as given (the native side checks shape and
        range); any other array is a ValueError naming its dtype (see :meth:`SearchSpace.as_codes`)."""
        return self.space.as_codes(archs, check_values=False)

    def predict(self, archs: ArchesLike, threads: int = 1) -> np.ndarray:
        """Calibrated latency in ms, float64 ``[N]``; ``threads<=0`` uses every core for large batches."""
        return self._native.predict(self.codes(archs), int(threads))

    def predict_one(self, arch: Arch | Mapping[str, Any]) -> float:
        return float(self.predict([arch])[0])

    def expected(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, ...]:
        """E[latency] and its gradients for batched probabilities ``ks[N,B,K], e[N,B,E], d[N,G,D], r[N,R]``.

        Returns ``(E[N], dE/dks, dE/de, dE/dd, dE/dr)``; the resolution axis is ``space.resolutions``
        and must put zero mass on resolutions outside ``served_resolutions``.
        """
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (ks, e, d, r)]
        return self._native.expected(*arrays)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The compiled, calibrated arrays: fixed term per resolution ``[R]`` (offset included) and block
        costs ``[R, B, K, E]``; NaN where a resolution is not served."""
        return self._native.dense()

    def __repr__(self) -> str:
        return (f"LatencyPredictor(space={self.space.name!r}, device={self.table.metadata.get('device')!r}, "
                f"resolutions={self.served_resolutions})")


def space_mismatch(table: LatencyTable, space: SearchSpace) -> str:
    """Why ``table`` was built for another space than ``space`` ("" when it records this one or none):
    names the table's file, its space and the requested one."""
    metadata = table.metadata
    lut_space, lut_hash = metadata.get("space"), metadata.get("space_hash")
    if (lut_space is None or lut_space == space.name) and (lut_hash is None or lut_hash == space.content_hash):
        return ""
    where = table.source or "this latency table (built in memory)"
    built_for = f"space {lut_space!r}" if lut_space else "another space"
    return (f"{where} was built for {built_for} (hash {lut_hash}), not the requested space {space.name!r} "
            f"(hash {space.content_hash})")
