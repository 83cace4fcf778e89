"""Prediction fidelity of the shipped device profiles, from their validation reports.

Reads ``device_profiles/*/validation.json`` (written by ``hwnas lut validate``: held-out subnets measured
end to end on the device) and prints the uncalibrated and calibrated figures side by side. It measures
nothing itself; `make profiles` re-measures. nn-Meter's anchor: 99.0% within ±10% on a phone CPU; a
naive op sum there reaches 91.3%.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


GOAL = {"within_10pct": 0.99, "within_5pct": 0.90, "rmspe_pct": 3.0, "n": 60}


def meets_goal(m: dict) -> bool:
    return (m["within_10pct"] >= GOAL["within_10pct"] and m["within_5pct"] >= GOAL["within_5pct"]
            and m["rmspe_pct"] <= GOAL["rmspe_pct"] and m["n"] >= GOAL["n"])


def sampling_label(report: dict) -> str:
    sampling = report.get("sampling", "")
    if "depth and width" in sampling:
        return "stratified: depth × width"
    return "size-stratified" if sampling.startswith("size-stratified") else "uniform"


def coverage(report: dict) -> str:
    """Depth and MACs range of the held-out subnets (reports from before these were recorded: –)."""
    held = [s for s in report["subnets"] if s.get("role") == "holdout" and "macs" in s]
    if not held:
        return "–"
    macs = [s["macs"] / 1e6 for s in held]
    depth = [s["depth"] for s in held]
    return f"depth {min(depth)}–{max(depth)}, {min(macs):.1f}–{max(macs):.0f} M MACs"


def row(name: str, label: str, sampling: str, m: dict, extra: str = "") -> str:
    return (f"| `{name}` | {label} | {sampling} | {m['n']} | {m['within_5pct']:.1%} | {m['within_10pct']:.1%} | "
            f"{m['rmspe_pct']:.2f}% | {m['max_abs_pct']:.1f}% | {m['kendall_tau']:.3f} | {extra} |")


def main() -> None:
    print("## Latency prediction fidelity of the shipped profiles (`benchmarks/profile_fidelity.py`)\n")
    print("Held-out subnets (the calibration was fitted on the other half), measured end to end on the")
    print("runtime the LUT was profiled on. Goal for every shipped LUT: ≥ 60 held-out subnets, ≥ 99% within ±10%,")
    print("≥ 90% within ±5%, RMSPE ≤ 3%.\n")
    print("Validation set: *stratified: depth × width* = at every resolution the smallest and largest arch, archs of")
    print("evenly spaced sizes between, and as many with depth and width paired at random (shallow-wide, deep-narrow);")
    print("*size-stratified* = sizes only; *uniform* = uniformly random archs, which cover only the middle of the range.\n")
    print("| profile | prediction | validation set | held-out | within ±5% | within ±10% | RMSPE | worst | Kendall τ | "
          "held-out range / goal |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for report_path in sorted(ROOT.glob("device_profiles/*/validation.json")):
        report = json.loads(report_path.read_text())
        name = report_path.parent.name
        sampling = sampling_label(report)
        calibrated = report["holdout_calibrated"]
        print(row(name, "op sum (uncalibrated)", sampling, report["holdout_uncalibrated"], coverage(report)))
        print(row(name, f"calibrated: {report['model']}", sampling, calibrated,
                  "**met**" if meets_goal(calibrated) else "not met"))
    print()
    print("| profile | device | profiled | runtime | resolutions | entries | profiling time | host load (start) |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for lut_path in sorted(ROOT.glob("device_profiles/*/lut.json")):
        meta = json.loads(lut_path.read_text())["metadata"]
        runtime = meta.get("runtime") or {}
        entries = len(json.loads(lut_path.read_text())["entries"])
        seconds = meta.get("profile_seconds")
        load = (meta.get("host") or {}).get("load_avg", [None])[0]
        threads = f", {runtime['threads']} thread" if runtime.get("threads") else ""
        resolutions = meta.get("resolutions") or (meta.get("protocol") or {}).get("resolutions")
        print(f"| `{lut_path.parent.name}` | {meta.get('device')} | {(meta.get('created_at') or '–')[:16]} | "
              f"{runtime.get('name')} {runtime.get('version') or ''} "
              f"({runtime.get('provider')}{threads}) | {resolutions} | {entries} | "
              f"{'imported' if seconds is None else f'{seconds / 60:.1f} min'} | {load if load is not None else '–'} |")
    print()


if __name__ == "__main__":
    main()
