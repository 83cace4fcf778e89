"""The one measurement protocol every target is timed with.

One *window*: warm up by count and by a time floor; then time runs in small batches until the 95%
confidence interval of the trimmed mean is within ``target_ci`` of it (or a run/time cap); summarise
with the interquartile mean (a clipped mean: 25% trimmed from each tail; the additive value), median,
std, p5, p95 and min. A window whose IQR/median exceeds ``unstable_iqr`` was timed during a noisy moment
and is measured again (up to ``retries`` times), keeping the steadiest.

Windows are short on purpose: on a CPU shared with other tenants the same model's speed drifts by up to
1.8× within seconds (measured on this project's VM), so callers time each model in several windows
spread over time (profile/validate: 8 interleaved passes) and keep the lowest — contention only ever
adds time. Measured here, that estimate repeats within ~1–2%, against ~3–5% for two long windows.

This module depends on numpy alone: remote bundles ship it verbatim beside their runner, so a
Raspberry Pi times ops with exactly the protocol a local profile uses.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any
from typing import Protocol as _Interface

import numpy as np


class TimedRunner(_Interface):
    """Anything that runs a model ``n`` times and returns per-run milliseconds."""

    def run_timed(self, n: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Protocol:
    """How long and how carefully to time one model."""

    warmup_runs: int = 5
    warmup_seconds: float = 0.02
    min_runs: int = 10
    max_runs: int = 2000
    max_seconds: float = 0.1
    target_ci: float = 0.02
    trim: float = 0.25
    unstable_iqr: float = 0.10
    retries: int = 1
    batch: int = 5

    def __post_init__(self) -> None:
        if not (0 <= self.trim < 0.5):
            raise ValueError(f"trim={self.trim} must be in [0, 0.5)")
        if self.min_runs < 5 or self.max_runs < self.min_runs:
            raise ValueError(f"need 5 <= min_runs <= max_runs, got {self.min_runs}, {self.max_runs}")
        if self.batch < 1 or self.target_ci <= 0 or self.max_seconds <= 0:
            raise ValueError("batch, target_ci and max_seconds must be positive")

    def describe(self) -> dict[str, Any]:
        return {"name": "hwnas-v1", **asdict(self),
                "additive_value": f"mean of runs after trimming {self.trim:.0%} from each tail"}

    @classmethod
    def quick(cls) -> Protocol:
        """Few runs, for tests and smoke checks (not for shipped LUTs)."""
        return cls(warmup_runs=2, warmup_seconds=0.0, min_runs=5, max_runs=20, max_seconds=0.05, retries=0, batch=5)


@dataclass(frozen=True)
class Measurement:
    """Summary of the runs kept for one model (ms)."""

    mean: float
    median: float
    std: float
    p5: float
    p95: float
    min: float
    n: int
    iqr_ratio: float
    unstable: bool
    attempts: int

    def stats(self) -> dict[str, float | int]:
        """The LatencyTable fields."""
        return {"mean": self.mean, "median": self.median, "std": self.std, "p5": self.p5, "p95": self.p95,
                "min": self.min, "n": self.n}


def trimmed(samples: np.ndarray, trim: float) -> np.ndarray:
    """Samples with the ``trim`` fraction removed from each tail (sorted)."""
    ordered = np.sort(samples)
    cut = int(len(ordered) * trim)
    return ordered[cut: len(ordered) - cut] if cut else ordered


def relative_ci(samples: np.ndarray, trim: float) -> float:
    """Half-width of the 95% confidence interval of the trimmed mean, relative to it."""
    kept = trimmed(samples, trim)
    if len(kept) < 2 or kept.mean() <= 0:
        return math.inf
    return 1.96 * kept.std(ddof=1) / math.sqrt(len(kept)) / kept.mean()


def summarise(samples: np.ndarray, protocol: Protocol, attempts: int) -> Measurement:
    kept = trimmed(samples, protocol.trim)
    q25, median, q75 = np.percentile(samples, [25, 50, 75])
    iqr_ratio = float((q75 - q25) / median) if median > 0 else math.inf
    return Measurement(
        mean=float(kept.mean()), median=float(median), std=float(samples.std(ddof=1)) if len(samples) > 1 else 0.0,
        p5=float(np.percentile(samples, 5)), p95=float(np.percentile(samples, 95)), min=float(samples.min()),
        n=int(len(samples)), iqr_ratio=iqr_ratio, unstable=iqr_ratio > protocol.unstable_iqr, attempts=attempts,
    )


def _time_once(runner: TimedRunner, protocol: Protocol) -> np.ndarray:
    start = time.perf_counter()
    warm = 0
    while warm < protocol.warmup_runs or time.perf_counter() - start < protocol.warmup_seconds:
        runner.run_timed(protocol.batch)
        warm += protocol.batch
    chunks: list[np.ndarray] = []
    count = 0
    start = time.perf_counter()
    while True:
        chunk = np.asarray(runner.run_timed(protocol.batch), dtype=np.float64)
        if not np.all(np.isfinite(chunk)) or np.any(chunk <= 0):
            raise RuntimeError(f"runner returned invalid timings {chunk.tolist()}")
        chunks.append(chunk)
        count += len(chunk)
        if count >= protocol.max_runs or time.perf_counter() - start >= protocol.max_seconds:
            break
        if count >= protocol.min_runs and relative_ci(np.concatenate(chunks), protocol.trim) <= protocol.target_ci:
            break
    return np.concatenate(chunks)


def measure(runner: TimedRunner, protocol: Protocol) -> Measurement:
    """Time ``runner`` under ``protocol``; unstable attempts are retried and the steadiest is kept."""
    best: Measurement | None = None
    for attempt in range(1, protocol.retries + 2):
        result = summarise(_time_once(runner, protocol), protocol, attempt)
        if best is None or result.iqr_ratio < best.iqr_ratio:
            best = Measurement(**{**asdict(result), "attempts": attempt})
        if not result.unstable:
            break
    assert best is not None
    return Measurement(**{**asdict(best), "attempts": attempt})
