"""The zoo: an entry built from a smoke-trained run loads, refuses damage naming the file, and is found by name
wherever the command line takes a supernet. The shipped entry's figures are re-measured (skipped if none ships)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.zoo import list_models, load, resolve_supernet
from hwnas.zoo.build import BuildOptions, build_entry
from hwnas.zoo.card import model_card
from hwnas.zoo.entry import REPO_ZOO


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A zoo entry made the way the shipped one is, from a 1-step-per-phase run on the shipped CIFAR-10 subset."""
    root = tmp_path_factory.mktemp("zoo")
    run = root / "run"
    assert main(["train", "--out", str(run), "--max-steps-per-phase", "1", "--batch-size", "16",
                 "--holdout", "0.01", "--bn-images", "16"]) == 0
    (run / "COMMIT.txt").write_text("0123abc started in a test\n")
    folder = build_entry(BuildOptions(run=str(run), name="toy-zoo", root=str(root / "zoo"), subnets=10,
                                      bn_images=16, progress=False))
    return root, run, folder


def test_built_entry_loads_with_its_predictor_card_and_record(built):
    root, run, folder = built
    assert list_models(root / "zoo") == ["toy-zoo"] and not list((root / "zoo").glob(".*"))
    model = load("toy-zoo", root / "zoo")
    meta = model.metadata
    assert (folder / "MODEL_CARD.md").read_text() == model_card(meta)
    assert meta["num_classes"] == 10 and len(meta["classes"]) == 10 and meta["space"] == "tiny-mbv3"
    assert meta["data"]["validation_images"] == 50 and meta["data"]["train_images"] == 4950
    assert meta["training"]["commit"] == "0123abc" and meta["training"]["steps"] == 6
    assert [row["name"] for row in meta["accuracy"]["shipped_test"]] == ["smallest", "middle", "largest"]
    assert meta["accuracy"]["shipped_test_images"] == 2000
    assert meta["predictor"]["n_subnets"] == 10 and meta["predictor"]["n_train"] + meta["predictor"]["n_val"] == 10
    pairs = [json.loads(line) for line in (folder / "accuracy_dataset.jsonl").read_text().splitlines()]
    assert len(pairs) == 10 and all(0 <= p["accuracy"] <= 1 for p in pairs)
    net = model.supernet()
    predictor = model.predictor()
    codes = net.space.encode([p["arch"] for p in pairs])
    assert np.all(np.isfinite(predictor.predict(codes)))
    from hwnas.nn.checkpoint import supernet_extra

    extra = supernet_extra(model.supernet_path)
    assert extra["data"]["data_dir"] is None and extra["training_data"]["holdout"] == 0.01
    assert (folder / "training" / "log.csv").is_file() and (folder / "training" / "config.json").is_file()


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "zoo" / folder.name
    shutil.copytree(folder, target)
    return target


def test_damaged_or_mismatched_entries_are_refused_naming_the_file(built, tmp_path):
    _, _, folder = built
    copy = _copy(folder, tmp_path)
    with open(copy / "accuracy_predictor.safetensors", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(ValueError, match="accuracy_predictor.safetensors: SHA-256 .* differs"):
        load("toy-zoo", tmp_path / "zoo")

    copy = _copy(folder, tmp_path / "b")
    manifest = json.loads((copy / "zoo.json").read_text())
    manifest["num_classes"] = 100
    (copy / "zoo.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="num_classes='10', but .*zoo.json says '100'"):
        load("toy-zoo", tmp_path / "b" / "zoo")
    manifest["num_classes"], manifest["space"] = 10, "other-space"
    (copy / "zoo.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="space='tiny-mbv3', but"):
        load("toy-zoo", tmp_path / "b" / "zoo")
    (copy / "zoo.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable zoo manifest"):
        load("toy-zoo", tmp_path / "b" / "zoo")
    (copy / "supernet.safetensors").unlink()
    (copy / "zoo.json").write_text(json.dumps(dict(manifest, space="tiny-mbv3")))
    with pytest.raises(ValueError, match="supernet file .*supernet.safetensors is missing"):
        load("toy-zoo", tmp_path / "b" / "zoo")
    with pytest.raises(ValueError, match="'nope': no zoo model of that name .*it holds: toy-zoo"):
        load("nope", tmp_path / "b" / "zoo")


def test_cli_finds_zoo_models_by_name(built, monkeypatch, capsys, tmp_path):
    root, run, folder = built
    monkeypatch.setenv("HWNAS_ZOO", str(root / "zoo"))
    assert resolve_supernet("toy-zoo") == str(folder / "supernet.safetensors")
    assert resolve_supernet(str(run / "supernet.safetensors")) == str(run / "supernet.safetensors")
    with pytest.raises(ValueError, match="--supernet 'missing.safetensors': no such file, and"):
        resolve_supernet("missing.safetensors")
    assert main(["zoo", "list"]) == 0
    assert "toy-zoo: tiny-mbv3, 10 classes; test smallest" in capsys.readouterr().out
    assert main(["zoo", "info", "toy-zoo"]) == 0
    assert "# toy-zoo" in capsys.readouterr().out
    assert main(["search", "--supernet", "nope", "--lut", "x.json", "--latency-ms", "5", "--out", str(tmp_path)]) == 2
    assert "no zoo model of that name" in capsys.readouterr().err


SHIPPED = sorted(p.parent.name for p in REPO_ZOO.glob("*/zoo.json"))


@pytest.mark.skipif(not SHIPPED, reason="no zoo entry ships in this checkout")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_entry_figures_hold_on_the_shipped_test_images(name):
    """The card's figures, re-measured from the shipped weights on the shipped 2,000 test images: equal to the
    card's shipped-test column (same images, same recalibration), and within 3 binomial standard errors of the
    full-test figures; the predictor meets the bar on its held-out subnets."""
    from hwnas.eval import load_eval_data, recorded_preprocessing, reference_subnets, subnet_accuracy
    from hwnas.nn.checkpoint import supernet_extra
    from hwnas.zoo.build import SHIPPED_SOURCE

    model = load(name)
    meta = model.metadata
    net = model.supernet().eval()
    data, _ = load_eval_data(SHIPPED_SOURCE, preprocessing=recorded_preprocessing(supernet_extra(model.supernet_path)))
    refs = reference_subnets(net.space)
    full = {row["name"]: row for row in meta["accuracy"]["test"]}
    shipped = {row["name"]: row for row in meta["accuracy"]["shipped_test"]}
    for row_name in ("smallest", "largest"):
        acc = subnet_accuracy(net, refs[row_name], data.calibration, data.test, data.preprocessing,
                              engine="onnxruntime")
        assert abs(acc - shipped[row_name]["test_acc"]) <= 0.001, (row_name, acc)
        sigma = np.hypot(shipped[row_name]["stderr"], full[row_name]["stderr"])
        assert abs(acc - full[row_name]["test_acc"]) <= 3 * sigma, (row_name, acc, full[row_name]["test_acc"])
    assert full["largest"]["test_acc"] >= 0.85 and full["smallest"]["test_acc"] >= 0.78
    assert meta["predictor"]["val"]["spearman"] >= 0.9 and meta["predictor"]["val"]["mae_pts"] <= 1.0


LUT = Path(__file__).resolve().parents[1] / "device_profiles" / "ort-cpu-1t-tiny-mbv3" / "lut.json"


def test_search_on_a_zoo_model_ranks_by_its_measurements_and_never_validates_on_trained_images(built, monkeypatch,
                                                                                                tmp_path):
    """The shipped training images were trained on: no holdout check on them and no predictor fitted on them;
    the zoo's measured accuracies come with its predictor."""
    from hwnas.eval import checkpoint_eval_data
    from hwnas.nn.checkpoint import supernet_extra
    from hwnas.search.run import SearchOptions, run_search

    root, run, folder = built
    data, _ = checkpoint_eval_data(supernet_extra(folder / "supernet.safetensors"))
    assert not data.held_out
    assert checkpoint_eval_data(supernet_extra(run / "supernet.safetensors"))[0].held_out  # its own run: held out
    with pytest.raises(ValueError, match="were part of its training set"):
        run_search(SearchOptions(supernet=str(folder / "supernet.safetensors"), luts=[str(LUT)], budgets_ms=[[5.0]],
                                 out=str(tmp_path / "fit"), n_archs=4, progress=False))
    monkeypatch.setenv("HWNAS_ZOO", str(root / "zoo"))
    assert main(["search", "--supernet", "toy-zoo", "--lut", str(LUT), "--latency-ms", "5", "--generations", "5",
                 "--out", str(tmp_path / "s")]) == 0
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["measured_accuracies"] == {"source": str(folder / "accuracy_dataset.jsonl"), "archs": 10}
    assert "holdout_accuracy" not in results["found"][0]


@pytest.mark.skipif(not SHIPPED, reason="no zoo entry ships in this checkout")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_entry_under_an_unlimited_budget_gives_its_best_measured_subnet(name):
    """The sandwich-trained largest subnet sits above what the predictor fits; under a budget it fits, the
    search returns the best measured subnet (the largest), not a smaller one the predictor overrates."""
    from hwnas.latency import LatencyPredictor, LatencyTable
    from hwnas.search import evolution_search
    from hwnas.search.measured import MeasuredAccuracies

    model = load(name)
    space = model.predictor().space
    latency = LatencyPredictor(space, LatencyTable.load(LUT))
    measured = MeasuredAccuracies.load(model.path("accuracy_dataset"), space)
    budget = 1.001 * latency.predict_one(space.max_arch())
    best = evolution_search(space, model.predictor(), {"cpu": latency}, {"cpu": budget}, generations=50,
                            measured=measured).best[0]
    assert best.accuracy_source == "measured" and best.accuracy == pytest.approx(measured.accuracies.max())
