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


def row(name: str, label: str, sampling: str, m: dict) -> str:
    return (f"| `{name}` | {label} | {sampling} | {m['n']} | {m['within_5pct']:.1%} | {m['within_10pct']:.1%} | "
            f"{m['rmspe_pct']:.2f}% | {m['max_abs_pct']:.1f}% | {m['kendall_tau']:.3f} |")


def main() -> None:
    print("## Latency prediction fidelity of the shipped profiles (`benchmarks/profile_fidelity.py`)\n")
    print("Held-out subnets (the calibration was fitted on the other half), measured end to end on the")
    print("runtime the LUT was profiled on. Goal for `ofa-mbv3-w1.0`: ≥ 99% within ±10%, ≥ 90% within ±5%, RMSPE ≤ 3%.\n")
    print("Validation set: *size-stratified* = the smallest and largest arch at every resolution and archs of")
    print("evenly spaced sizes between; *uniform* = uniformly random archs (reports written before the")
    print("stratified sampler), which cover only the middle of the latency range.\n")
    print("| profile | prediction | validation set | held-out | within ±5% | within ±10% | RMSPE | worst | Kendall τ |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for report_path in sorted(ROOT.glob("device_profiles/*/validation.json")):
        report = json.loads(report_path.read_text())
        name = report_path.parent.name
        sampling = "size-stratified" if report.get("sampling", "").startswith("size-stratified") else "uniform"
        print(row(name, "op sum (uncalibrated)", sampling, report["holdout_uncalibrated"]))
        print(row(name, f"calibrated: {report['model']}", sampling, report["holdout_calibrated"]))
    print()
    print("| profile | runtime | resolutions | entries | profiling time | host load (start) |")
    print("|---|---|---|---:|---:|---:|")
    for lut_path in sorted(ROOT.glob("device_profiles/*/lut.json")):
        meta = json.loads(lut_path.read_text())["metadata"]
        runtime = meta.get("runtime") or {}
        entries = len(json.loads(lut_path.read_text())["entries"])
        seconds = meta.get("profile_seconds")
        load = (meta.get("host") or {}).get("load_avg", [None])[0]
        threads = f", {runtime['threads']} thread" if runtime.get("threads") else ""
        resolutions = meta.get("resolutions") or (meta.get("protocol") or {}).get("resolutions")
        print(f"| `{lut_path.parent.name}` | {runtime.get('name')} {runtime.get('version') or ''} "
              f"({runtime.get('provider')}{threads}) | {resolutions} | {entries} | "
              f"{'imported' if seconds is None else f'{seconds / 60:.1f} min'} | {load if load is not None else '–'} |")
    print()


if __name__ == "__main__":
    main()
