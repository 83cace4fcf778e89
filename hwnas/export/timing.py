"""Latency of exported files, measured here next to the LUT's prediction — now, or later for finished exports.

Every format entry of an export report carries a ``timing`` spec (runtime format, resolution, threads, and the
LUT that priced it): enough to time the file again without the supernet. :func:`measure_exports` times the
files of several exports in one session — interleaved rounds over every file, with the LUT validation's
anchor subnets nearest to each prediction re-timed in the same rounds to tell the machine's drift since
validation from the prediction's error (``hwnas.latency.drift``) — and completes their reports. A job that
builds and verifies many exports (the demo) runs that work in parallel, then times everything on a quiet
machine, since timing beside other work would read the other work's load.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import read_json, write_json_atomic
from ..space import get_space
from .verify import DEFAULT_ANCHORS, Anchor, TimedFile, anchors_for, measure_files, speed_now


def timing_spec(fmt: str, resolution: int, pricing: dict[str, Any] | None, int8: bool) -> dict[str, Any]:
    """What timing a file needs: its runtime format and input size, the threads of the LUT that priced the
    format, and (fp32 only: the LUTs price fp32) that LUT's path, target and prediction for the drift check."""
    spec: dict[str, Any] = {"format": fmt, "resolution": int(resolution), "threads": pricing["threads"] if pricing else 1}
    if pricing is not None and not int8:
        spec.update(lut=pricing["path"], target=pricing["target"], predicted_ms=pricing["predicted_ms"])
    return spec


def measure_reports(jobs: Sequence[tuple[Path, dict[str, Any]]], drift_anchors: int = DEFAULT_ANCHORS) -> None:
    """Time every file of the export reports ``(folder, report)`` in one interleaved session and add the
    measurements to the reports (in place). Anchors shared by several files are timed once."""
    timed: list[TimedFile] = []
    anchors: dict[str, list[Anchor]] = {}
    for number, (folder, report) in enumerate(jobs):
        space = get_space(report["space"])
        for key, entry in report["formats"].items():
            spec = entry.get("timing")
            if spec is None:
                raise ValueError(f"{folder}: format {key} has no timing spec (an export from an older hwnas): "
                                 "export it again")
            item = f"{number}/{key}"
            data = (Path(folder) / entry["file"]).read_bytes()
            timed.append(TimedFile(item, data, spec["format"], spec["resolution"], spec["threads"]))
            if spec.get("lut"):
                anchors[item] = anchors_for(space, spec["lut"], spec["format"], spec["target"], spec["threads"],
                                            spec["predicted_ms"], drift_anchors)
    unique = {a.key: a.item for group in anchors.values() for a in group}
    measured = measure_files(timed + list(unique.values()))
    for number, (_, report) in enumerate(jobs):
        for key, entry in report["formats"].items():
            item = f"{number}/{key}"
            entry.update(measured[item])
            if entry.get("predicted_latency_ms"):
                entry["measured_vs_predicted"] = round(entry["measured_latency_ms"] / entry["predicted_latency_ms"] - 1, 4)
                speed = speed_now(anchors.get(item, []), measured)
                if speed is not None:
                    now = entry["predicted_latency_ms"] * speed["factor"]
                    entry["machine_speed_vs_validation"] = speed
                    entry["predicted_now_ms"] = round(now, 4)
                    entry["measured_vs_predicted_now"] = round(entry["measured_latency_ms"] / now - 1, 4)
        report["measured"] = True


def measure_exports(folders: Sequence[str | Path], drift_anchors: int = DEFAULT_ANCHORS) -> list[dict[str, Any]]:
    """:func:`measure_reports` for finished export folders (``report.json`` and the files beside it), whose
    reports are rewritten (atomically) with the measurements; returns the reports."""
    jobs = []
    for folder in map(Path, folders):
        path = folder / "report.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run hwnas export --out {folder} first")
        jobs.append((folder, read_json(path)))
    measure_reports(jobs, drift_anchors)
    for folder, report in jobs:
        write_json_atomic(folder / "report.json", report)
    return [report for _, report in jobs]
