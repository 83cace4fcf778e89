"""``hwnas demo --smoke``: every stage of the main job runs and the report shows each one's numbers."""
from __future__ import annotations

import json

import pytest

from hwnas.cli import main


@pytest.mark.slow
def test_smoke_demo_runs_every_stage_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[train]" in printed and "[search]" in printed and "demo finished" in printed
    report = (out / "report.md").read_text()
    assert "| budget ms |" in report and report.count("| pass |") == 3
    for name in ("pareto.png", "latency.png", "training.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    search = json.loads((out / "search" / "results.json").read_text())
    assert len(search["found"]) == 3
    for entry in search["found"]:
        budget = next(iter(entry["budgets_ms"].values()))
        bundle = out / "export" / f"{budget:g}ms"
        exported = json.loads((bundle / "report.json").read_text())
        assert exported["arch"] == entry["arch"] and exported["passed"]
        assert {"onnx", "tflite"} == set(exported["formats"])  # smoke: no int8 (an untrained net cannot pass it)
        assert exported["formats"]["onnx"]["measured_latency_ms"] > 0
    assert main(["demo", "--smoke", "--out", str(out)]) == 0  # everything finished is reused, not redone
    assert "reusing" in capsys.readouterr().out
