"""A speed reference timed between every two measurement windows: which windows caught the machine's fast state.

This project's 2-core VM switches between speed states within a second: the same op runs in 11.4 µs, then
14.6, then 17.5 (1.5×), and it is not this VM's doing (pinning to either core or burning the other core
changes nothing). Each entry is timed in several windows and keeps its fastest (contention only ever adds
time), which is right as long as one window caught the fast state. An entry whose windows all fell in slow
moments was priced up to 1.6× too high beside its neighbours, and two profiles disagreed by however much
of each run was slow. So one fixed op of the space, the *reference*, is timed between every two windows:
a window is *fast* when the readings before and after it are both within ``FAST_TOLERANCE`` of ``base_ms``
(a low percentile of the run's readings, the machine's fast state: 0.02219, 0.02220 and 0.02220 ms in three
tiny-mbv3 profiles here), and an entry without a fast window is timed again, round after round, until it
has one (``settle``).

Scaling slow windows by the reference's slowdown instead was tried and rejected: a slow state does not slow
every model alike (a 122 M-MAC subnet ran 1.15× slower in a window where the reference ran 1.33× slower),
so pricing made 14 of 120 ofa-mbv3-w1.0 validation subnets up to 14% too fast
(docs/experiments/speed-reference.md).

The same reference, rebuilt from the LUT's metadata, serves ``hwnas lut validate``'s whole subnets and tells
``hwnas lut check`` how fast the machine runs now.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..space import OpSignature
from .protocol import trimmed
from .targets.base import Runner

WARMUP_RUNS = 5
TIMED_RUNS = 20
FAST_TOLERANCE = 0.05
BASE_PERCENTILE = 5.0
SETTLE_ROUNDS = 8
METHOD = ("between every two windows a fixed op (the reference) is timed; a window is fast when both readings "
          f"around it are within {FAST_TOLERANCE:.0%} of base_ms (the {BASE_PERCENTILE:.0f}th percentile of the "
          "run's readings); an entry without a fast window is timed again, up to "
          f"{SETTLE_ROUNDS} more rounds; each entry keeps its fastest window")


def reference_signature(signatures: Sequence[OpSignature]) -> tuple[OpSignature, int]:
    """The op timed as the speed reference, the inverted-residual block of median MACs (ties broken by key): an
    op of the space's typical size; with the seed the profiler builds it with (its index in ``signatures``)."""
    blocks = sorted((s for s in signatures if s.kind == "expanded_conv"), key=lambda s: (s.macs, s.key))
    if not blocks:
        raise ValueError("the space has no expanded_conv op to use as the speed reference")
    reference = blocks[len(blocks) // 2]
    return reference, list(signatures).index(reference)


def time_reference(runner: Runner) -> float:
    """One short reading of the reference (ms): a few warm-up runs, then the clipped mean of ``TIMED_RUNS``."""
    runner.run_timed(WARMUP_RUNS)
    samples = np.asarray(runner.run_timed(TIMED_RUNS), dtype=np.float64)
    return float(trimmed(samples, 0.25).mean())


def base_speed(readings: Sequence[float]) -> float:
    """The machine's fast state in reference time: a low percentile of the run's readings."""
    values = np.asarray([r for r in readings if r > 0], dtype=np.float64)
    if not len(values):
        raise ValueError("no reference readings: the run recorded no speed reference")
    return float(np.percentile(values, BASE_PERCENTILE))


def readings_of(records: Sequence[dict[str, Any]]) -> list[float]:
    """Every reference reading recorded beside ``records`` (each window's before and after)."""
    return [float(r[field]) for r in records for field in ("ref_before", "ref_after") if r.get(field)]


def is_fast(record: dict[str, Any], base_ms: float) -> bool:
    """Whether the machine was in its fast state on both sides of this window."""
    return max(float(record["ref_before"]), float(record["ref_after"])) <= base_ms * (1 + FAST_TOLERANCE)


def combine(records: Sequence[dict[str, Any]], base_ms: float) -> dict[str, Any]:
    """One entry from its windows: the fastest, with how far the windows spread and how many were fast."""
    best = min(records, key=lambda r: r["mean"])
    means = [r["mean"] for r in records]
    spread = (max(means) - min(means)) / min(means) if min(means) > 0 else 0.0
    fast = sum(is_fast(r, base_ms) for r in records)
    return {**best, "pass_spread": spread, "fast_windows": fast, "settled": fast > 0}


class WindowTimer:
    """Times windows with a reading of the reference on both sides; consecutive windows share one reading."""

    def __init__(self, reference_runner: Runner) -> None:
        self.reference_runner = reference_runner
        self.last: float | None = None

    def time(self, measure_window: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        before = self.last if self.last is not None else time_reference(self.reference_runner)
        record = measure_window()
        self.last = time_reference(self.reference_runner)
        return {**record, "ref_before": before, "ref_after": self.last}


def settle(windows: Callable[[], dict[str, list[dict[str, Any]]]], first_extra_pass: int,
           time_window: Callable[[str, int], None], seed: int, rounds: int = SETTLE_ROUNDS) -> int:
    """Time again, one round at a time, every key of ``windows()`` without a fast window (journaled by
    ``time_window(key, pass_index)``, so a killed run resumes here too); returns the rounds it took."""
    for round_index in range(rounds + 1):
        current = windows()
        base_ms = base_speed(readings_of([r for w in current.values() for r in w]))
        pending = sorted(key for key, w in current.items() if not combine(w, base_ms)["settled"])
        if not pending or round_index == rounds:
            return round_index
        for key in np.random.default_rng(seed + round_index).permutation(pending):
            time_window(str(key), first_extra_pass + round_index)
    return rounds


def summary(reference: OpSignature, seed: int, records: dict[str, list[dict[str, Any]]], passes: int,
            rounds: int) -> dict[str, Any]:
    """What a LUT or validation report records about its speed reference."""
    readings = readings_of([r for w in records.values() for r in w])
    base_ms = base_speed(readings)
    kept = [combine(w, base_ms) for w in records.values()]
    return {"key": reference.key, "seed": seed, "base_ms": base_ms, "method": METHOD, "readings": len(readings),
            "median_ms": float(np.median(readings)), "p90_ms": float(np.percentile(readings, 90)),
            "passes": passes, "settle_rounds": rounds, "windows": sum(len(w) for w in records.values()),
            "fast_windows": sum(k["fast_windows"] for k in kept),
            "unsettled": sorted(key for key, k in zip(records, kept) if not k["settled"])}
