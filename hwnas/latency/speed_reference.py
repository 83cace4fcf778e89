"""A speed reference timed between every two measurement windows, so every entry is priced at one machine speed.

This project's 2-core VM switches between speed states within a second: the same op runs in 11.4 µs, then
14.6, then 17.5 (1.5×), and every op of a space moves by the same factor at the same moment (measured: a
reference op and three others, slow state / fast state 1.49, 1.56, 1.48 and 1.57). Keeping each entry's
fastest window (the old rule) then mixes states: an entry whose eight windows all fell in slow moments is
priced 1.5× too high beside its neighbours, and two profiles of one machine disagree by whatever share of
each run was slow. So one fixed op of the space, the *reference*, is timed between every two windows; a
window is priced at the reference speed ``base_ms`` by ``mean × base_ms / reference_around_it`` (the mean of
the reference timings just before and after), windows in which the state changed (the two reference timings
disagree) are set aside, and the median of the steady windows is the entry's *reference-priced* value.
``base_ms`` is a low percentile of the run's reference timings: the machine's fast state, which repeats from
run to run (0.02219, 0.02220 and 0.02220 ms in three tiny-mbv3 profiles here).

An entry keeps its fastest window while that is within ``FALLBACK_TOLERANCE`` of its reference-priced value
(the window caught the fast state; it is the more precise figure), and the reference-priced value otherwise
(no window caught it). Measured on this VM (10,000 random tiny-mbv3 subnets, two profiles): fastest window
only 0.36–0.43% median disagreement when every entry caught the fast state but 13–29% when 79–165 entries saw
only slow windows; reference-priced median only 1.2–2.0%; this rule 0.39–0.47% and 0.88–1.09%
(docs/experiments/speed-reference.md).

The same reference, rebuilt from the LUT's metadata, prices ``hwnas lut validate``'s whole subnets at the same
speed and tells ``hwnas lut check`` how fast the machine runs now.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..space import OpSignature
from .protocol import trimmed
from .targets.base import Runner

WARMUP_RUNS = 5
TIMED_RUNS = 20
STEADY_TOLERANCE = 0.05  # before/after reference timings further apart than this: the state changed mid-window
BASE_PERCENTILE = 5.0
FALLBACK_TOLERANCE = 0.05
METHOD = ("between every two windows a fixed op (the reference) is timed; a window is priced at base_ms (the "
          f"{BASE_PERCENTILE:.0f}th percentile of the run's reference timings) by base_ms / mean(reference before, "
          f"after); windows whose two reference timings differ by more than {STEADY_TOLERANCE:.0%} are set aside; "
          "an entry keeps its fastest window unless that is more than "
          f"{FALLBACK_TOLERANCE:.0%} slower than the median of its priced windows, then that median")


def reference_signature(signatures: Sequence[OpSignature]) -> OpSignature:
    """The op timed as the speed reference: the inverted-residual block of median MACs (ties broken by key), an op
    of the space's typical size, so that its slowdown in a slow state is the typical op's."""
    blocks = sorted((s for s in signatures if s.kind == "expanded_conv"), key=lambda s: (s.macs, s.key))
    if not blocks:
        raise ValueError("the space has no expanded_conv op to use as the speed reference")
    return blocks[len(blocks) // 2]


def time_reference(runner: Runner) -> float:
    """One short reading of the reference (ms): a few warm-up runs, then the clipped mean of ``TIMED_RUNS``."""
    runner.run_timed(WARMUP_RUNS)
    samples = np.asarray(runner.run_timed(TIMED_RUNS), dtype=np.float64)
    return float(trimmed(samples, 0.25).mean())


def base_speed(readings: Sequence[float]) -> float:
    """The reference time that entries are priced at: the run's fast state (a low percentile of its readings)."""
    values = np.asarray([r for r in readings if r > 0], dtype=np.float64)
    if not len(values):
        raise ValueError("no reference readings: the run recorded no speed reference")
    return float(np.percentile(values, BASE_PERCENTILE))


def readings_of(records: Sequence[dict[str, Any]]) -> list[float]:
    """Every reference reading recorded beside ``records`` (each window's before and after)."""
    return [float(r[field]) for r in records for field in ("ref_before", "ref_after") if r.get(field)]


def window_factor(record: dict[str, Any], base_ms: float) -> tuple[float, bool]:
    """(scale that prices this window at ``base_ms``, whether the state held through the window)."""
    before, after = float(record["ref_before"]), float(record["ref_after"])
    steady = abs(before - after) <= STEADY_TOLERANCE * min(before, after)
    return base_ms / (0.5 * (before + after)), steady


def combine_normalised(records: Sequence[dict[str, Any]], base_ms: float) -> dict[str, Any]:
    """One entry from its windows: the window whose scaled mean is the median of the steady ones, all its
    statistics scaled; ``pass_spread`` is how far the scaled windows agreed, ``steady_windows`` how many held."""
    factors = [window_factor(r, base_ms) for r in records]
    steady = [i for i, (_, ok) in enumerate(factors) if ok] or list(range(len(records)))
    scaled = {i: records[i]["mean"] * factors[i][0] for i in steady}
    ordered = sorted(steady, key=lambda i: scaled[i])
    chosen = ordered[(len(ordered) - 1) // 2]
    factor = factors[chosen][0]
    kept = {**records[chosen]}
    for field in ("mean", "median", "std", "p5", "p95", "min"):
        kept[field] = float(records[chosen][field]) * factor
    values = list(scaled.values())
    kept["pass_spread"] = (max(values) - min(values)) / min(values) if min(values) > 0 else 0.0
    kept["steady_windows"] = len([f for f in factors if f[1]])
    kept["raw_mean"] = float(records[chosen]["mean"])
    return kept


def combine(records: Sequence[dict[str, Any]], base_ms: float) -> dict[str, Any]:
    """The kept measurement of one entry (see the module docstring); ``priced`` says which rule gave it."""
    priced = combine_normalised(records, base_ms)
    fastest = min(records, key=lambda r: r["mean"])
    if fastest["mean"] <= priced["mean"] * (1 + FALLBACK_TOLERANCE):
        return {**fastest, "pass_spread": priced["pass_spread"], "steady_windows": priced["steady_windows"],
                "priced": False}
    return {**priced, "priced": True}
