"""Do two independent profiling runs agree? Re-profile a shipped LUT's space on its runtime and compare.

For each shipped CPU profile named on the command line (default: every one measured on this machine's CPU
model), this profiles the same ops again from scratch into a temporary folder — new models, new sessions, a
different random order — and compares the uncalibrated predictions of 10,000 random subnets from both tables.
Goal (issue 33): median disagreement ≤ 3% and 95th percentile ≤ 6%, the two profiles ≥ 30 min apart (the
table says how far apart they were); a profile of three resolutions ≤ 10 min. Also printed: the ratio of the
two runs' fastest machine states (their speed references' ``base_ms``), which says how much of a
disagreement is the machine's speed rather than the profile.
"""
from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency.profiler import profile
from hwnas.latency.targets import get_target
from hwnas.space import get_space

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ["device_profiles/ort-cpu-1t-ofa-mbv3-w1.0", "device_profiles/tflite-1t-ofa-mbv3-w1.0",
              "device_profiles/ort-cpu-1t-tiny-mbv3", "device_profiles/tflite-1t-tiny-mbv3"]


def same_cpu_profiles() -> list[str]:
    """The candidates measured on this machine's CPU model (comparing with another CPU's table measures the
    CPUs' difference, not repeatability)."""
    from hwnas.latency.targets.base import cpu_model

    here = cpu_model()
    return [f for f in CANDIDATES if LatencyTable.load(ROOT / f / "lut.json").metadata.get("device") == here]


def minutes_since(created_at: str | None) -> float | None:
    if not created_at:
        return None
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(created_at)).total_seconds() / 60


def uncalibrated(table: LatencyTable) -> LatencyTable:
    copy = LatencyTable.loads(table.dumps())
    copy.update_metadata(calibration=None)
    return copy


def main(folders: list[str]) -> None:
    print("## Profiling repeatability (`benchmarks/profile_repeatability.py`)\n")
    print("Each shipped LUT's ops profiled again from scratch (new models and sessions, other random order);")
    print("uncalibrated predictions of 10,000 random subnets compared. Goal: median disagreement ≤ 3%, 95th")
    print("percentile ≤ 6%, the profiles ≥ 30 min apart; a full profile ≤ 10 min. *Fastest state* = the fresh run's")
    print("speed reference over the shipped one's (1.000: the machine's fast state was the same); *at one speed* =")
    print("the fresh table divided by that measured ratio (what `hwnas lut check` reports), i.e. the disagreement")
    print("the profile itself adds once the machine's own change of speed is taken out.\n")
    print("| profile | resolutions | apart | fresh profile time | median disagreement | p95 | max | fastest state | "
          "median at one speed | p95 at one speed | load avg | goal (raw / at one speed) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    if not folders:
        print("No shipped CPU profile was measured on this CPU model: nothing to compare with (run `make profiles`).\n")
    for folder in folders:
        shipped = LatencyTable.load(ROOT / folder / "lut.json")
        meta = shipped.metadata
        space = get_space(meta["space"])
        target = get_target(meta["target"], int(meta["runtime"]["threads"]))
        apart = minutes_since(meta.get("created_at"))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            fresh = profile(space, target, tmp, resolutions=meta["resolutions"], seed=1, progress=False)
            seconds = time.time() - start
        rng = np.random.default_rng(0)
        codes = space.sample_codes(10_000, rng)
        codes[:, -1] = rng.choice([space.resolutions.index(r) for r in meta["resolutions"]], len(codes))
        a = LatencyPredictor(space, uncalibrated(shipped)).predict(codes)
        b = LatencyPredictor(space, uncalibrated(fresh)).predict(codes)
        gap = np.abs(a - b) / np.minimum(a, b)
        then, now = (meta.get("speed_reference") or {}).get("base_ms"), fresh.metadata["speed_reference"]["base_ms"]
        state = f"×{now / then:.3f}" if then else "–"
        median, p95 = 100 * np.median(gap), 100 * np.percentile(gap, 95)
        scaled = b * (then / now) if then else b
        gap_scaled = np.abs(a - scaled) / np.minimum(a, scaled)
        median_s, p95_s = 100 * np.median(gap_scaled), 100 * np.percentile(gap_scaled, 95)
        timing_ok = seconds <= 600 and apart is not None and apart >= 30
        verdict = " / ".join("**met**" if m <= 3 and q <= 6 and timing_ok else "not met"
                             for m, q in ((median, p95), (median_s, p95_s)))
        print(f"| `{folder}` | {meta['resolutions']} | {'?' if apart is None else f'{apart:.0f} min'} | "
              f"{seconds / 60:.1f} min | {median:.2f}% | {p95:.2f}% | {100 * gap.max():.2f}% | {state} | "
              f"{median_s:.2f}% | {p95_s:.2f}% | {os.getloadavg()[0]:.2f} | {verdict} |", flush=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1:] or same_cpu_profiles())
