"""``hwnas search`` as a user runs it, on a supernet trained for a few steps on a tiny local dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from train_helpers import write_npz_dataset

from hwnas.cli import main
from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.nn import load_supernet
from hwnas.search import smallest
from hwnas.search.run import device_name, parse_budgets

from conftest import random_table, write_validation_report


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    write_npz_dataset(root, n_train=96, n_test=24)
    out = root / "train"
    assert main(["train", "--data", "toy", "--data-dir", str(root), "--out", str(out), "--max-steps-per-phase", "1",
                 "--batch-size", "16", "--holdout", "0.25", "--bn-images", "8"]) == 0
    space = load_supernet(out / "supernet.safetensors").space
    lut = root / "toy-device" / "lut.json"
    lut.parent.mkdir()
    table = random_table(space, seed=3)
    table.update_metadata(target="ort-cpu", runtime={"name": "onnxruntime", "threads": 1})  # as if profiled here
    table.save(lut)
    write_validation_report(lut.parent, space)
    low = smallest(LatencyPredictor(space, LatencyTable.load(lut)))[0]
    return root, out / "supernet.safetensors", lut, low


def test_evolution_search_writes_results_and_plot_then_reuses_the_predictor(trained, tmp_path, capsys):
    root, supernet, lut, low = trained
    out = tmp_path / "evo"
    budgets = f"{1.5 * low:.4f},{2.5 * low:.4f}"
    args = ["search", "--supernet", str(supernet), "--lut", str(lut), "--latency-ms", budgets, "--out", str(out),
            "--n-archs", "12", "--population", "16", "--generations", "10"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "accuracy predictor: held-out Spearman" in printed and "results.json" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"] == "evolution" and len(results["found"]) == 2
    for entry, budget in zip(results["found"], (1.5 * low, 2.5 * low)):
        assert entry["latency_ms"]["toy-device"] <= budget + 1e-3 and 0 <= entry["holdout_accuracy"] <= 1
    assert results["pareto"]["toy-device"] and results["accuracy_predictor"]["n_val"] == 2
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    journal = (out / "accuracy_dataset" / "journal-rank0.jsonl").read_text()
    assert main(args) == 0  # the saved predictor is reused: nothing is measured again
    assert (out / "accuracy_dataset" / "journal-rank0.jsonl").read_text() == journal


def test_gradient_search_and_errors(trained, tmp_path, capsys):
    root, supernet, lut, low = trained
    out = tmp_path / "grad"
    assert main(["search", "--supernet", str(supernet), "--lut", str(lut), "--latency-ms", f"{2 * low:.4f}",
                 "--strategy", "gradient", "--steps", "4", "--out", str(out), "--n-archs", "12", "--measure"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"] == "gradient" and len(results["found"]) == 1
    found = results["found"][0]
    assert "expected_latency_ms" in found and found["measured_latency_ms"]["toy-device"] > 0  # timed with onnxruntime
    assert (out / "measured-toy-device.jsonl").exists()
    speed = found["machine_speed_vs_validation"]["toy-device"]  # 4 validation subnets re-timed in the same rounds
    assert speed["anchors"] == 4 and speed["factor"] == pytest.approx(float(np.median(speed["ratios"])), rel=1e-3)
    # searching again into the same folder for another budget re-measures other archs: the old journal goes
    assert main(["search", "--supernet", str(supernet), "--lut", str(lut), "--latency-ms", f"{3 * low:.4f}",
                 "--strategy", "gradient", "--steps", "4", "--out", str(out), "--n-archs", "12", "--measure"]) == 0
    again = json.loads((out / "results.json").read_text())["found"][0]
    assert again["measured_latency_ms"]["toy-device"] > 0
    capsys.readouterr()
    assert main(["search", "--supernet", str(supernet), "--lut", str(lut), "--latency-ms", f"{0.5 * low:.4f}",
                 "--out", str(out), "--generations", "2"]) == 2
    assert "cannot be met: the smallest achievable is" in capsys.readouterr().err
    assert main(["search", "--supernet", str(supernet), "--lut", f"{lut},{lut}", "--latency-ms", "5",
                 "--out", str(out)]) == 2
    assert "1 budget group(s) for 2 LUT(s)" in capsys.readouterr().err


def test_budget_parsing_and_device_names():
    assert parse_budgets("5,8,12;20, 30,40", 2) == [[5.0, 8.0, 12.0], [20.0, 30.0, 40.0]]
    assert parse_budgets("5;", 2) == [[5.0], []]
    with pytest.raises(ValueError, match="must be numbers"):
        parse_budgets("fast", 1)
    assert device_name("device_profiles/ort-cpu-1t-tiny-mbv3/lut.json") == "ort-cpu-1t-tiny-mbv3"
    assert device_name("luts/note10.json") == "note10"
