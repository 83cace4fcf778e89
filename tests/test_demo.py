"""``hwnas demo``: every stage of the main job runs on the zoo supernet, the report's table parses with every
column filled, and the checks it prints are the issue's bars."""
from __future__ import annotations

import dataclasses
import json

import pytest

from hwnas.cli import main
from hwnas.demo.report import COLUMNS, Row, checks, markdown_table, parse_table

NUMERIC = [c for c in COLUMNS if c not in ("runtime", "val acc from", "file kB fp32/int8", "fp32 check",
                                           "int8 (experimental)")]
INT8_COLUMNS = ("int8 LUT ms", "int8 measured ms", "int8 error %", "test acc % int8")


def _row(runtime: str, budget: float, acc: float, error: float = 0.01, int8_error: float = -0.05) -> Row:
    return Row(runtime=runtime, budget=budget, lut_ms=budget, measured_ms=budget * (1 + error), error=error,
               raw_error=error, int8_lut_ms=budget * 2, int8_ms=budget * 2 * (1 + int8_error), int8_error=int8_error,
               predicted_acc=acc + 0.01, acc_source="predicted", test_acc=acc, int8_acc=acc - 0.002,
               int8_agreement=0.985, macs=12_000_000, kb=(2000.0, 700.0), fp32_passed=True, folder="export/x")


def test_table_round_trips_with_every_cell_filled():
    rows = [_row("ort-cpu", 0.3, 0.79), _row("ort-cpu", 1.5, 0.845), _row("tflite", 0.5, 0.82)]
    parsed = parse_table("# report\n\n" + markdown_table(rows) + "\n\ntext after\n")
    assert len(parsed) == 3 and list(parsed[0]) == list(COLUMNS)
    for row in parsed:
        assert all(cell for cell in row.values())
        for column in NUMERIC:
            float(row[column])  # a glued separator ("0.4570-") or a placeholder would not parse
        assert row["file kB fp32/int8"].count("/") == 1


def test_checks_flag_a_falling_accuracy_a_low_largest_budget_and_a_latency_miss():
    rows = [_row("ort-cpu", 0.3, 0.79), _row("ort-cpu", 0.8, 0.84), _row("ort-cpu", 1.5, 0.835, error=0.12)]
    held = [held for _, held, _ in checks(rows, {"ort-cpu": 0.25})]
    assert held == [False, True, False, False, True]  # drop of 0.5 pts; 79% ≥ 78%; 83.5% < 84%; +12% latency; int8 −5%
    int8_miss = [_row("ort-cpu", 0.3, 0.79), _row("ort-cpu", 0.8, 0.84, int8_error=0.2)]
    assert checks(int8_miss, {"ort-cpu": 0.25})[-1][:2] == ("ort-cpu: int8 measured latency within ±10% of the int8 LUT",
                                                             False)
    no_int8_lut = [dataclasses.replace(r, int8_lut_ms=None, int8_error=None) for r in rows]
    assert len(checks(no_int8_lut, {"ort-cpu": 0.25})) == 4  # int8 timed but not priced: no int8 latency check
    below = checks(rows, {"ort-cpu": 0.4})[1]
    assert not below[1] and "below the smallest subnet" in below[2]


@pytest.mark.slow
def test_smoke_demo_on_the_zoo_supernet_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[zoo] tiny-mbv3-cifar10" in printed and "[search] ort-cpu" in printed and "[search] tflite" in printed
    assert "demo finished" in printed and "[train]" not in printed
    report = (out / "report.md").read_text()
    rows = parse_table(report)
    assert [r["runtime"] for r in rows] == ["ort-cpu", "ort-cpu", "tflite", "tflite"]
    for row in rows:
        for column in NUMERIC:
            if column not in INT8_COLUMNS:  # smoke exports no int8
                float(row[column])
        assert row["fp32 check"] == "pass"
        assert 65 < float(row["test acc % fp32"]) <= 100  # the pretrained supernet (78–86%), not an untrained one (10%)
    assert "## Checks" in report and "experimental" in report
    assert "measured" in [row["val acc from"] for row in rows]  # the largest budget: the zoo's measured largest subnet
    assert "timing 3 bundles' files" in printed  # built and verified in 2 processes, then timed alone
    for name in ("pareto.png", "latency.png", "accuracy_latency.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    for runtime in ("ort-cpu", "tflite"):
        search = json.loads((out / f"search-{runtime}" / "results.json").read_text())
        assert search["accuracy_predictor"]["val"]["spearman"] >= 0.9  # the zoo's predictor, not a refit
        assert len(search["found"]) == 2
    assert main(["demo", "--smoke", "--out", str(out)]) == 0  # everything finished is reused, not redone
    again = capsys.readouterr().out
    assert again.count("reusing") >= 4 and "[export] ort-cpu" not in again.replace("reusing", "")


@pytest.mark.slow
def test_smoke_demo_train_path_trains_then_fits_its_own_predictor(tmp_path, capsys):
    out = tmp_path / "demo-train"
    assert main(["demo", "--smoke", "--train", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[train]" in printed and "[zoo]" not in printed
    assert (out / "accuracy_predictor.safetensors").exists() and (out / "training.png").exists()
    assert len(parse_table((out / "report.md").read_text())) == 4


def test_int8_lut_stage_finds_the_shipped_int8_lut_and_says_when_there_is_none(tmp_path, monkeypatch, capsys):
    from hwnas.demo import stages
    from hwnas.latency import LatencyTable

    found = stages.int8_lut_stage("ort-cpu", any_cpu=True)
    assert found is not None and found.parent.name == "ort-cpu-1t-tiny-mbv3-int8"
    assert LatencyTable.load(found).precision == "int8"
    monkeypatch.setattr(stages, "REPO_PROFILES", tmp_path)  # no profiles shipped
    assert stages.int8_lut_stage("tflite", any_cpu=True) is None
    assert "timed, not predicted" in capsys.readouterr().out


def test_an_export_of_another_tflite_int8_mode_is_not_reused(tmp_path):
    from hwnas.demo import stages

    arch = {"ks": [3], "e": [3], "d": [1], "r": 32}
    report = {"arch": arch, "formats": {"onnx": {"timing": {}}}, "options": {"tflite_int8": "dynamic"}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert stages._finished(tmp_path, stages.arch_key(arch)) is None
    report["options"]["tflite_int8"] = stages.DEMO_TFLITE_INT8
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert stages._finished(tmp_path, stages.arch_key(arch)) == report
