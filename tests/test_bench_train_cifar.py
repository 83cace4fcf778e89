"""benchmarks/train_cifar.py's bookkeeping of a run resumed across machines (training itself is faked)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def train_cifar(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # it imports run_all as its neighbour, as when run as a script
    spec = importlib.util.spec_from_file_location("train_cifar", BENCH / "train_cifar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_training(out: Path, calls: list, steps: int, step_s: float):
    """Stands in for `hwnas train`: records its command line and writes the results a finished run would."""
    def run(command, **_):
        calls.append(command)
        (out / "results.json").write_text(json.dumps({"steps": steps, "train_step_s": step_s, "wall_s": 1.0}))
    return run


def test_a_resumed_run_records_each_segment_and_estimates_the_whole_wall_clock(train_cifar, tmp_path, monkeypatch):
    out, calls = tmp_path / "run", []
    clock = iter([100.0, 400.0])  # the resumed segment's wall clock: 300 s
    monkeypatch.setattr(train_cifar.time, "perf_counter", lambda: next(clock))
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "state.json").write_text(json.dumps({"global_step": 600, "elapsed_s": 500.0}))
    (out / "segments.json").write_text(json.dumps([{"measured_on": "Measured on day 1: CPU A.", "from_step": 0,
                                                    "step_s_before": 0.0}]))  # killed with its machine
    monkeypatch.setattr(train_cifar.subprocess, "run", fake_training(out, calls, steps=1000, step_s=750.0))

    results, wall, _, measured, segments = train_cifar.run_training("standard", 1, out, resume=True)

    assert calls[0][-1] == "--resume" and results["steps"] == 1000
    # 750 s of steps in all (250 of them in this segment) + this segment's 50 s outside the steps
    assert wall == pytest.approx(800.0) and segments == 2
    recorded = json.loads((out / "segments.json").read_text())
    assert [s["from_step"] for s in recorded] == [0, 600] and recorded[1]["to_step"] == 1000
    assert recorded[1]["wall_s"] == pytest.approx(300.0) and "wall_s" not in recorded[0]
    assert measured.startswith("Segments: from step 0: Measured on day 1: CPU A. from step 600: ")
    assert json.loads((out / "bench.json").read_text())["segments"] == 2


def test_a_single_segment_reports_its_own_wall_clock(train_cifar, tmp_path, monkeypatch):
    out, calls = tmp_path / "run", []
    clock = iter([10.0, 70.0])
    monkeypatch.setattr(train_cifar.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(train_cifar.subprocess, "run", fake_training(out, calls, steps=10, step_s=40.0))
    _, wall, _, measured, segments = train_cifar.run_training("quick", 1, out)
    assert "--resume" not in calls[0] and wall == pytest.approx(60.0) and segments == 1
    assert measured.startswith("Measured on ") and len(json.loads((out / "segments.json").read_text())) == 1


def test_the_section_says_when_the_wall_clock_is_an_estimate(train_cifar):
    results = {"space": "tiny-mbv3", "steps": 1000, "train_step_s": 750.0,
               "dataset": {"train": 45000, "holdout_bn": 2500, "holdout_val": 2500, "test": 10000},
               "subnets": [{"name": n, "arch": {"r": 32}, "macs": 1e6, "test_acc": 0.8} for n in ("smallest", "largest")]}
    phases = [{"name": "expand-2", "epochs": 10, "lr": 0.05, "subnets_per_step": 3, "with_largest": True,
               "with_smallest": True, "bounds_at_extreme_resolutions": True, "distil_from_largest": True}]
    text = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], [], phases, "Segments: ...", [], segments=2)
    assert "Run in 2 segments" in text and "Wall clock of the whole command" not in text
    assert "(largest + smallest + uniform), bounds at the extreme resolutions, in-place KD from the largest." in text
    single = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], [], phases, "Measured on x.", [])
    assert "Wall clock of the whole command: **13.3 min**" in single
    assert single.startswith("## Progressive shrinking on CIFAR-10, `standard` schedule (`benchmarks/")
    moved_phases = [{"epochs": e} for e in (12.0, 3.0, 1.0, 3.0, 1.0, 16.5)]
    moved = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], [], phases, "Measured on x.", [],
                                epochs=train_cifar.epochs_label("standard", moved_phases))
    assert moved.startswith("## Progressive shrinking on CIFAR-10, `standard` schedule, epochs 12,3,1,3,1,16.5 (")
    assert "--schedule standard --epochs 12,3,1,3,1,16.5`" in moved
    fit = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], [], phases, "Measured on x.", [],
                              fit={"smallest": 0.81, "largest": 0.9})
    assert "| test accuracy (supernet, BN recalibrated) | accuracy on 5,000 of its training images |" in fit
    assert "| smallest | 32 | 1.0 M | 80.00% | 81.00% |" in fit


def test_the_epochs_label_follows_the_phases_a_run_trained_not_the_options_it_was_given(train_cifar):
    from hwnas.train.schedule import schedule_epochs

    own = [{"epochs": e} for e in schedule_epochs("standard")]
    assert train_cifar.epochs_label("standard", own) == ""  # also a run whose --epochs later became the default
    older = [dict(p) for p in own]
    older[-1]["epochs"] += 2.5
    label = train_cifar.epochs_label("standard", older)
    assert label and label.split(",")[-1] == f"{schedule_epochs('standard')[-1] + 2.5:g}"
    quick = [{"epochs": e} for e in schedule_epochs("quick")]
    assert train_cifar.epochs_label("quick", quick) == "" and train_cifar.epochs_label("standard", quick) != ""
    with pytest.raises(ValueError, match="unknown schedule 'huge'"):
        schedule_epochs("huge")


def test_segments_on_one_kind_of_machine_name_it_once(train_cifar):
    same = [{"from_step": 0, "measured_on": "Measured on d: CPU A."}, {"from_step": 600, "measured_on": "Measured on d: CPU A."}]
    assert train_cifar.segments_line(same) == "Segments from steps 0, 600, all: Measured on d: CPU A."
    mixed = [same[0], {"from_step": 600, "measured_on": "Measured on e: CPU B."}]
    assert train_cifar.segments_line(mixed) == ("Segments: from step 0: Measured on d: CPU A. "
                                                "from step 600: Measured on e: CPU B.")


def test_phase_times_come_from_the_cumulative_seconds_of_the_log(train_cifar):
    rows = [{"phase": "teacher", "phase_step": "1", "seconds": "30"}, {"phase": "teacher", "phase_step": "2", "seconds": "60"},
            {"phase": "kernel", "phase_step": "1", "seconds": "150"}]
    assert train_cifar.phase_times_line(rows) == ("Optimiser-step time per phase: teacher 1.0 min (30.00 s/step); "
                                                  "kernel 1.5 min (90.00 s/step).\n")
    assert train_cifar.phase_times_line([]) == ""


def _run_results(steps: int = 1000) -> dict:
    return {"steps": steps, "subnets": [{"name": n, "arch": {"r": r}, "macs": 1e6, "test_acc": 0.8}
                                        for n, r in (("smallest", 24), ("middle", 32), ("largest", 40))]}


def test_baselines_are_kept_and_reported_again_until_the_run_changes(train_cifar, tmp_path, monkeypatch):
    trained = []

    def fake_alone(results, setup, entry, checkpoint):
        assert checkpoint == tmp_path / f"standalone-{entry['name']}"
        trained.append(entry["name"])
        return {"name": entry["name"], "arch": entry["arch"], "r": entry["arch"]["r"], "macs": entry["macs"],
                "supernet": entry["test_acc"], "standalone": 0.9, "steps": results["steps"], "standalone_s": 5.0}

    monkeypatch.setattr(train_cifar, "train_alone", fake_alone)
    monkeypatch.setattr(train_cifar, "standalone_setup", lambda out: {})  # no dataset read in this test
    rows = train_cifar.standalone_rows(_run_results(), tmp_path, ["largest", "smallest"])
    assert trained == ["smallest", "largest"] and [r["name"] for r in rows] == ["smallest", "largest"]
    rows = train_cifar.standalone_rows(_run_results(), tmp_path, [])  # reported from standalone.json, not retrained
    assert trained == ["smallest", "largest"] and [r["name"] for r in rows] == ["smallest", "largest"]
    rows = train_cifar.standalone_rows(_run_results(), tmp_path, ["smallest", "middle", "largest"])  # only the missing
    assert trained == ["smallest", "largest", "middle"] and [r["name"] for r in rows] == ["smallest", "middle", "largest"]
    assert train_cifar.standalone_rows(_run_results(steps=2000), tmp_path, []) == []  # another run's baselines
    rerun = _run_results()
    rerun["subnets"][0]["test_acc"] = 0.85  # a run of as many steps reusing the file: its own supernet column
    assert [r["supernet"] for r in train_cifar.standalone_rows(rerun, tmp_path, [])] == [0.85, 0.8, 0.8]
    with pytest.raises(SystemExit, match="tiniest"):
        train_cifar.standalone_rows(_run_results(), tmp_path, ["tiniest"])

    results = {**_run_results(), "space": "tiny-mbv3", "train_step_s": 750.0,
               "dataset": {"train": 45000, "holdout_bn": 2500, "holdout_val": 2500, "test": 10000}}
    text = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], rows, [], "Measured on x.", [])
    assert "| smallest | 24 | 1.0 M | 80.00% | 90.00% | -10.00 pts | 0.1 min |" in text
    assert "Not trained alone yet" not in text
    resumed = [{**rows[0], "segments": 3}]
    text = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], resumed, [], "Measured on x.", [])
    assert "| -10.00 pts | 0.1 min (3 sittings) |" in text
    text = train_cifar.section("standard", 2, results, 800.0, [1.0, 2.0], rows[:1], [], "Measured on x.", [])
    assert "Not trained alone yet: middle, largest (`--from-run DIR --standalone NAME`)." in text


def test_the_fit_check_is_kept_until_the_supernet_or_its_subnets_change(train_cifar, tmp_path, monkeypatch):
    scored = []

    def fake_score(out, results):
        scored.append(out)
        return {s["name"]: 0.5 + len(scored) / 10 for s in results["subnets"]}

    monkeypatch.setattr(train_cifar, "score_train_fit", fake_score)
    (tmp_path / "supernet.safetensors").write_bytes(b"weights-1")
    first = train_cifar.train_fit(tmp_path, _run_results())
    assert first == {"smallest": 0.6, "middle": 0.6, "largest": 0.6} and len(scored) == 1
    assert train_cifar.train_fit(tmp_path, _run_results()) == first and len(scored) == 1  # kept
    (tmp_path / "supernet.safetensors").write_bytes(b"weights-2")  # the run trained again
    assert train_cifar.train_fit(tmp_path, _run_results())["smallest"] == 0.7 and len(scored) == 2
    other = _run_results()
    other["subnets"][1]["arch"] = {"r": 36}  # another middle subnet
    assert train_cifar.train_fit(tmp_path, other)["middle"] == 0.8 and len(scored) == 3
