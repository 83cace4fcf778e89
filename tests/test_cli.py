"""The ``hwnas lut`` commands, run as a user would (in-process and as a subprocess)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from hwnas.cli import main
from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.space import get_space

from conftest import ROOT, random_table


def test_import_info_predict_round_trip(note10_dir, tmp_path, capsys):
    lut = tmp_path / "note10.json"
    files = [str(p) for p in sorted(note10_dir.glob("*_lookup_table.yaml"))]
    assert main(["lut", "import-ofa", *files, "-o", str(lut), "--space", "ofa-mbv3-w1.2",
                 "--device", "Samsung Note10"]) == 0
    assert "serves ofa-mbv3-w1.2 at resolutions [160" in capsys.readouterr().out
    assert main(["lut", "info", str(lut), "--space", "ofa-mbv3-w1.2"]) == 0
    info = capsys.readouterr().out
    assert "Samsung Note10" in info and "calibration none" in info

    space = get_space("ofa-mbv3-w1.2")
    archs = [space.sample(np.random.default_rng(i)) for i in range(20)]
    archs = [a for a in archs if a.r >= 160] or [space.max_arch()]
    jsonl = tmp_path / "archs.jsonl"
    jsonl.write_text("\n".join(json.dumps({**a.to_dict(), "image_size": a.r}) for a in archs) + "\n")
    out = tmp_path / "pred.jsonl"
    assert main(["lut", "predict", str(lut), "--space", "ofa-mbv3-w1.2", "--archs", str(jsonl), "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = LatencyPredictor(space, LatencyTable.load(lut)).predict(archs)
    np.testing.assert_allclose([line["latency_ms"] for line in lines], expected, rtol=1e-12)
    assert [line["r"] for line in lines] == [a.r for a in archs]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "hwnas-latency-table"')
    assert main(["lut", "info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwnas: error:") and "bad.json" in err

    space = get_space("tiny-mbv3")
    lut = tmp_path / "tiny.json"
    random_table(space, seed=0).save(lut)
    archs = tmp_path / "archs.jsonl"
    archs.write_text(json.dumps(space.max_arch().to_dict()) + "\n" + '{"ks": [4]}\n')
    assert main(["lut", "predict", str(lut), "--space", "tiny-mbv3", "--archs", str(archs)]) == 2
    assert "archs.jsonl:2" in capsys.readouterr().err


def test_console_entry_point_runs_as_a_module(tmp_path):
    space = get_space("tiny-mbv3")
    lut = tmp_path / "tiny.json"
    random_table(space, seed=0).save(lut)
    arch = space.min_arch()
    result = subprocess.run([sys.executable, "-m", "hwnas", "lut", "predict", str(lut), "--space", "tiny-mbv3",
                             "--archs", "-"], input=json.dumps(arch.to_dict()) + "\n", capture_output=True,
                            text=True, cwd=ROOT, check=True)
    latency = json.loads(result.stdout)["latency_ms"]
    assert latency == LatencyPredictor(space, LatencyTable.load(lut)).predict_one(arch)


def test_read_json_names_the_file(tmp_path):
    import pytest

    from hwnas.atomic import read_json, write_json_atomic

    write_json_atomic(tmp_path / "ok.json", {"a": [1, 2]})
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.json: not found"):
        read_json(tmp_path / "missing.json")


def test_profile_validates_in_one_command_and_check_reads_the_result(tmp_path, capsys):
    """`hwnas profile --validate N` profiles and validates; `hwnas lut check` then re-times a few of its ops."""
    out = tmp_path / "prof"
    assert main(["profile", "--target", "ort-cpu", "--space", "tiny-mbv3", "--resolutions", "24", "--quick",
                 "--passes", "2", "--validate", "10", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "without a window in the machine's fast state" in printed and "calibrated" in printed
    table = LatencyTable.load(out / "lut.json")
    assert table.metadata["speed_reference"]["base_ms"] > 0
    assert table.metadata["calibration"] is not None and (out / "validation.json").is_file()
    assert main(["lut", "check", str(out / "lut.json"), "--ops", "3", "--passes", "2",
                 "--json", str(tmp_path / "check.json")]) == 0
    assert "this machine runs the LUT's ops" in capsys.readouterr().out
    report = json.loads((tmp_path / "check.json").read_text())
    assert len(report["ops"]) == 3 and report["ratio"] > 0
    # a drift bound of -1% can never hold: the exit status says so
    assert main(["lut", "check", str(out / "lut.json"), "--ops", "2", "--passes", "1", "--max-drift", "-1"]) == 1
