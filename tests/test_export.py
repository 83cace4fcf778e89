"""``hwnas export``: exported ONNX/TFLite files match the PyTorch subnet, the bundle runs without torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from train_helpers import write_npz_dataset

from hwnas.cli import main
from hwnas.export import ExportOptions, export
from hwnas.export.files import read_metadata
from hwnas.export.subnet import prepare_subnet
from hwnas.export.timing import measure_exports
from hwnas.nn import OFAMobileNetV3, save_supernet
from hwnas.space import get_space

from conftest import random_table, write_validation_report

DATA = {"name": "toy", "holdout": 0.25, "seed": 0, "bn_images": 12}


def _supernet(root, space_name: str, seed: int):
    space = get_space(space_name)
    torch.manual_seed(seed)
    model = OFAMobileNetV3(space, num_classes=4)
    path = root / f"{space_name}.safetensors"
    save_supernet(model, path, extra={"data": {**DATA, "data_dir": str(root)}, "classes": ["a", "b", "c", "d"]})
    return space, path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_npz_dataset(root, n_train=64, n_test=100)
    space, path = _supernet(root, "tiny-mbv3", seed=0)
    lut = root / "ort-cpu-toy" / "lut.json"
    lut.parent.mkdir()
    table = random_table(space, seed=1)
    table.update_metadata(target="ort-cpu", runtime={"name": "onnxruntime", "threads": 1})
    table.save(lut)
    write_validation_report(lut.parent, space)
    return root, space, path, lut


def test_five_random_tiny_archs_match_pytorch_in_onnx_and_tflite(toy, tmp_path):
    root, space, supernet, lut = toy
    rng = np.random.default_rng(7)
    for i in range(5):
        arch = space.sample(rng)
        out = tmp_path / f"arch{i}"
        report = export(ExportOptions(supernet=str(supernet), out=str(out), arch=arch.to_dict(), luts=[str(lut)],
                                      measure=i == 0, progress=False))
        assert set(report["formats"]) == {"onnx", "tflite"} and report["passed"], report["formats"]
        for fmt, name in (("onnx", "model.onnx"), ("tflite", "model.tflite")):
            entry = report["formats"][fmt]
            assert entry["file"] == name and entry["max_abs_diff"] <= 1e-4 and entry["top1_agreement"] == 1.0
            assert entry["test_images"] == 100 and abs(entry["test_acc"] - report["pytorch_test_acc"]) < 1e-9
            metadata = read_metadata(str(out / name))
            assert json.loads(metadata["hwnas.arch"]) == arch.to_dict()
            assert metadata["hwnas.space_hash"] == space.content_hash
            assert json.loads(metadata["hwnas.classes"]) == ["a", "b", "c", "d"]
            assert "ort-cpu-toy@" in metadata["hwnas.lut_ids"]
        predicted = report["predicted_latency_ms"]["ort-cpu-toy"]
        assert report["formats"]["onnx"]["predicted_latency_ms"] == pytest.approx(predicted, abs=1e-3)
        assert report["formats"]["tflite"]["predicted_latency_ms"] is None  # no TFLite LUT was given
        if i == 0:
            assert report["formats"]["onnx"]["measured_latency_ms"] > 0 and report["formats"]["tflite"]["measured_latency_ms"] > 0
            onnx = report["formats"]["onnx"]  # drift: 4 validation subnets of the LUT re-timed beside the file
            speed = onnx["machine_speed_vs_validation"]
            assert speed["anchors"] == 4 and speed["factor"] == pytest.approx(float(np.median(speed["ratios"])), rel=1e-3)
            assert onnx["predicted_now_ms"] == pytest.approx(onnx["predicted_latency_ms"] * speed["factor"], rel=1e-3)
            assert onnx["measured_vs_predicted_now"] == pytest.approx(
                onnx["measured_latency_ms"] / onnx["predicted_now_ms"] - 1, abs=1e-3)
            assert "machine_speed_vs_validation" not in report["formats"]["tflite"]  # no TFLite LUT: nothing to anchor
        for name in ("run.py", "png.py", "labels.json", "preprocess.json", "arch.json", "report.json", "README.md"):
            assert (out / name).is_file(), name
        assert json.loads((out / "arch.json").read_text())["arch"] == arch.to_dict()
        if i == 1:  # not timed: timed later, with another export, in one session from the folders alone
            assert not report["measured"] and "measured_latency_ms" not in report["formats"]["onnx"]
            first, second = measure_exports([tmp_path / "arch0", out])
            assert first["measured"] and second["measured"]
            assert json.loads((out / "report.json").read_text())["formats"] == second["formats"]
            onnx = second["formats"]["onnx"]
            assert onnx["measured_latency_ms"] > 0 and onnx["machine_speed_vs_validation"]["anchors"] == 4
            assert second["formats"]["tflite"]["measured_latency_ms"] > 0
            with pytest.raises(FileNotFoundError, match="report.json does not exist"):
                measure_exports([tmp_path / "nowhere"])


@pytest.mark.slow
def test_an_ofa_w10_arch_matches_pytorch(toy, tmp_path):
    root = toy[0]
    space, supernet = _supernet(root, "ofa-mbv3-w1.0", seed=1)
    arch = space.sample(np.random.default_rng(3))
    arch = space.arch({**arch.to_dict(), "r": 160})
    report = export(ExportOptions(supernet=str(supernet), out=str(tmp_path / "w10"), arch=arch.to_dict(), luts=[],
                                  measure=False, test_images=40, progress=False))
    for fmt in ("onnx", "tflite"):
        entry = report["formats"][fmt]
        assert entry["passed"] and entry["max_abs_diff"] <= 1e-4 and entry["top1_agreement"] == 1.0, entry


def _run_bundle(bundle, model: str, inputs) -> list[int]:
    """run.py in a fresh interpreter where torch and hwnas cannot be imported."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['hwnas'] = None; import runpy; "
            f"sys.argv = ['run.py', {model!r}, {str(inputs)!r}, '--json']; runpy.run_path('run.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=bundle, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [row["class_id"] for row in json.loads(done.stdout)]


def test_int8_files_and_the_bundle_runs_without_torch(toy, tmp_path):
    root, space, supernet, lut = toy
    arch = space.max_arch()
    out = tmp_path / "bundle"
    assert main(["export", "--supernet", str(supernet), "--arch", _arch_file(tmp_path, arch), "--int8",
                 "--calib-images", "8", "--lut", str(lut), "--no-measure", "--out", str(out)]) in (0, 1)
    report = json.loads((out / "report.json").read_text())
    assert set(report["formats"]) == {"onnx", "tflite", "onnx_int8", "tflite_int8"}
    for key, precision in (("onnx_int8", "int8"), ("tflite_int8", "int8-dynamic")):
        entry = report["formats"][key]
        assert entry["precision"] == precision and entry["criterion"].startswith("top1_agreement")
        assert 0.5 <= entry["top1_agreement"] <= 1.0  # untrained weights: the ≥ 98% check is benchmarks/export.py's
        assert entry["size_bytes"] < report["formats"][key.removesuffix("_int8")]["size_bytes"] / 2.5
    assert read_metadata(str(out / "model_int8.tflite"))["hwnas.precision"].startswith("int8")
    assert json.loads(read_metadata(str(out / "model_int8.onnx"))["hwnas.arch"]) == arch.to_dict()

    subnet = prepare_subnet(supernet, arch)
    images = subnet.data.test.images[:100]
    expected = subnet.logits(images).argmax(1).tolist()
    np.save(tmp_path / "uint8.npy", images)
    np.save(tmp_path / "float.npy", images.astype(np.float32) / 255.0)
    assert _run_bundle(out, "model.onnx", tmp_path / "uint8.npy") == expected
    assert _run_bundle(out, "model.tflite", tmp_path / "float.npy") == expected
    int8 = _run_bundle(out, "model_int8.tflite", tmp_path / "uint8.npy")
    assert np.mean(np.array(int8) == np.array(expected)) == pytest.approx(report["formats"]["tflite_int8"]["top1_agreement"],
                                                                          abs=0.02)


def test_static_full_integer_tflite(toy, tmp_path):
    root, space, supernet, lut = toy
    out = tmp_path / "static"
    report = export(ExportOptions(supernet=str(supernet), out=str(out), arch=space.min_arch().to_dict(), formats=["tflite"],
                                  int8=True, tflite_int8="static", calib_images=8, luts=[], test_images=20, measure=False,
                                  progress=False))
    entry = report["formats"]["tflite_int8"]
    assert entry["precision"] == "int8" and 0.0 <= entry["top1_agreement"] <= 1.0 and entry["test_images"] == 20
    from hwnas.export.bundle_run import Model

    model = Model(str(out / "model_int8.tflite"), threads=1)
    assert model._input["dtype"] == np.int8 and model._output["dtype"] == np.int8  # full integer in and out
    assert "static_wi8_ai8" in read_metadata(str(out / "model_int8.tflite"))["hwnas.precision"]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "model_int8.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "HARD_SWISH" not in ops and ops.count("DELEGATE") == 1  # quantised from the h-swish-as-ADD/MUL form
    with pytest.raises(ValueError, match="'fancy'"):
        export(ExportOptions(supernet=str(supernet), out=str(out), arch=space.min_arch().to_dict(), formats=["tflite"],
                             int8=True, tflite_int8="fancy", luts=[], verify=False, measure=False, progress=False))


def _arch_file(folder, arch) -> str:
    path = folder / "arch.json"
    path.write_text(json.dumps({"arch": arch.to_dict()}))
    return str(path)


def test_export_from_a_search_and_clear_errors(toy, tmp_path, capsys):
    root, space, supernet, lut = toy
    search = tmp_path / "search"
    search.mkdir()
    archs = [space.min_arch(), space.max_arch()]
    (search / "results.json").write_text(json.dumps({
        "supernet": str(supernet), "luts": {"ort-cpu-toy": str(lut)},
        "found": [{"arch": a.to_dict(), "budgets_ms": {"ort-cpu-toy": b}} for a, b in zip(archs, (0.5, 1.5))]}))
    out = tmp_path / "from-search"
    assert main(["export", "--from-search", str(search), "--budget", "1.5", "--format", "onnx", "--no-measure",
                 "--test-images", "20", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["arch"] == space.max_arch().to_dict() and set(report["formats"]) == {"onnx"}
    assert "model.onnx" in capsys.readouterr().out

    assert main(["export", "--from-search", str(search), "--budget", "0.7", "--out", str(out)]) == 2
    assert "--budget 0.7 is not among the searched budgets [[0.5], [1.5]]" in capsys.readouterr().err
    assert main(["export", "--from-search", str(search), "--out", str(out)]) == 2
    assert "choose one with --budget" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**space.max_arch().to_dict(), "r": 17}))
    assert main(["export", "--supernet", str(supernet), "--arch", str(bad), "--out", str(out)]) == 2
    assert "17" in capsys.readouterr().err
    assert main(["export", "--supernet", str(supernet), "--arch", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err
    assert main(["export", "--supernet", str(supernet), "--arch", _arch_file(tmp_path, space.min_arch()),
                 "--format", "coreml", "--out", str(out)]) == 2
    assert "'coreml'" in capsys.readouterr().err


def test_litert_torch_conversion_agrees_with_hwnas_tflite(toy, tmp_path):
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch (optional extra 'convert') not installed")
    root, space, supernet, lut = toy
    arch = space.max_arch()
    subnet = prepare_subnet(supernet, arch)
    report = export(ExportOptions(supernet=str(supernet), out=str(tmp_path / "x"), arch=arch.to_dict(), formats=["tflite"],
                                  luts=[], verify=False, measure=False, progress=False))
    assert report["formats"]["tflite"]["file"] == "model.tflite"
    x = subnet.inputs_nchw(subnet.data.test.images[:1])
    converted = litert_torch.convert(subnet.module.eval(), (torch.from_numpy(x),))
    theirs = np.asarray(converted(torch.from_numpy(x)))
    from hwnas.export.bundle_run import Model

    ours = Model(str(tmp_path / "x" / "model.tflite"), threads=1).logits(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert np.max(np.abs(ours - theirs)) <= 1e-4
