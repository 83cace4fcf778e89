"""Pareto fronts of accuracy against latency: the archs no other arch beats on both at once."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

_FLUSH_ROWS = 50_000


def pareto_front(latency: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (lower latency, higher accuracy), by ascending latency.

    Among equal points only the first is kept.
    """
    latency, accuracy = np.asarray(latency, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    order = np.lexsort((-accuracy, latency))  # latency ascending, then accuracy descending
    best_before = np.maximum.accumulate(np.r_[-np.inf, accuracy[order][:-1]])
    return order[accuracy[order] > best_before]


class ParetoArchive:
    """Accumulates evaluated archs and keeps, per device, the accuracy–latency Pareto front.

    Points are buffered and folded into the fronts in large batches, so adding a population per
    generation costs an append.
    """

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)
        self._fronts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        self._pending_rows = 0

    def add(self, codes: np.ndarray, accuracy: np.ndarray, latencies: Mapping[str, np.ndarray]) -> None:
        self._pending.append((codes, accuracy, {d: latencies[d] for d in self.devices}))
        self._pending_rows += len(codes)
        if self._pending_rows >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        codes = np.concatenate([p[0] for p in self._pending])
        accuracy = np.concatenate([p[1] for p in self._pending])
        for device in self.devices:
            latency = np.concatenate([p[2][device] for p in self._pending])
            if device in self._fronts:
                old_codes, old_latency, old_accuracy = self._fronts[device]
                all_codes = np.concatenate([old_codes, codes])
                all_latency, all_accuracy = np.r_[old_latency, latency], np.r_[old_accuracy, accuracy]
            else:
                all_codes, all_latency, all_accuracy = codes, latency, accuracy
            keep = pareto_front(all_latency, all_accuracy)
            self._fronts[device] = (all_codes[keep], all_latency[keep], all_accuracy[keep])
        self._pending, self._pending_rows = [], 0

    def fronts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per device: (codes ``[F, S]``, accuracy ``[F]``) of its front, by ascending latency."""
        self._flush()
        return {device: (codes, accuracy) for device, (codes, _, accuracy) in self._fronts.items()}
