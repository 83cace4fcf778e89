"""Remote devices: benchmark_model parsing (old and new layouts), bundle round trip, adb flow with a fake adb."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency.protocol import Protocol
from hwnas.latency.remote.adb import parse_benchmark_output, parse_op_table, parse_summary, profile_over_adb
from hwnas.latency.remote.bundle import import_results, write_bundle
from hwnas.space import get_space

OLD_LAYOUT = """\
STARTING!
Num runs: [50]
Graph: [/data/local/tmp/hwnas/0003.tflite]
Loaded model /data/local/tmp/hwnas/0003.tflite
Initialized session in 2.281ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=412 first=2133 curr=1254 min=1160 max=2133 avg=1203.45 std=61

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=829 first=1250 curr=1198 min=1152 max=1733 avg=1205.92 std=48

============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    0.412\t    0.401\t 33.307%\t 33.307%\t     0.000\t        1\t[conv_1]
\t       DEPTHWISE_CONV_2D\t            0.402\t    0.301\t    0.299\t 24.834%\t 58.141%\t     0.000\t        1\t[depthwise_2]
\t                 CONV_2D\t            0.701\t    0.504\t    0.504\t 41.859%\t100.000%\t     0.000\t        1\t[project_3]

Average inference timings in us: Warmup: 1203.45, Init: 2281, Inference: 1205.92
"""

NEW_LAYOUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/hwnas/0003.tflite]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.0123
INFO: Initialized session in 3.11ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=398 first=2201 curr=1230 min=1155 max=2201 avg=1229.8 std=70 p5=1160 median=1214 p95=1320

INFO: Running benchmark for at least 100 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=811 first=1240 curr=1199 min=1149 max=1650 avg=1188.4 std=39 p5=1156 median=1181 p95=1247

INFO: ============================== Run Order ==============================
INFO: \t             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
INFO: \t       TfLiteXNNPackDelegate\t    1.101\t    1.064\t100.000%\t100.000%\t     0.000\t        1\t[output]:3

INFO: Inference timings in us: Init: 3110, First inference: 2201, Warmup (avg): 1229.8, Inference (avg): 1188.4
"""


def test_parse_old_layout():
    summary = parse_summary(OLD_LAYOUT)
    assert summary["avg_ms"] == pytest.approx(1.20592) and summary["count"] == 829  # the timed run, not warm-up
    assert summary["std_ms"] == pytest.approx(0.048) and summary["min_ms"] == pytest.approx(1.152)
    ops = parse_benchmark_output(OLD_LAYOUT)["ops"]
    assert [op["node_type"] for op in ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert [op["avg_ms"] for op in ops] == [0.401, 0.299, 0.504]


def test_parse_new_layout():
    summary = parse_summary(NEW_LAYOUT.replace("INFO: ", ""))
    assert summary["avg_ms"] == pytest.approx(1.1884) and summary["median_ms"] == pytest.approx(1.181)
    assert summary["p95_ms"] == pytest.approx(1.247)
    rows = parse_op_table(NEW_LAYOUT.replace("INFO: ", ""))
    assert rows[0]["node type"] == "TfLiteXNNPackDelegate" and rows[0]["avg ms"] == 1.064 and "start" not in rows[0]


def test_parser_errors_are_explicit():
    with pytest.raises(ValueError, match="no timing summary"):
        parse_summary("ERROR: Could not open model\n")
    assert parse_summary("Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, "
                         "Inference (avg): 1500")["avg_ms"] == 1.5


BLOCK_TORCH = textwrap.dedent("""
    import runpy, sys
    for name in ("torch", "hwnas"):
        sys.modules[name] = None  # importing either now fails: the runner must not need them
    sys.argv = ["runner.py", sys.argv[1]]
    runpy.run_path(sys.argv[1] + "/runner.py", run_name="__main__")
""")


def test_bundle_round_trip_through_the_standalone_runner(tmp_path):
    space = get_space("tiny-mbv3")
    bundle = write_bundle(space, tmp_path / "bundle", resolutions=[24], protocol=Protocol.quick(), passes=2)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len(manifest["entries"]) == len(space.all_signatures([24]))
    assert {"runner.py", "hwnas_protocol.py", "hwnas_litert.py", "manifest.json"} <= set(os.listdir(bundle))
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(bundle)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = import_results(bundle)
    assert table.metadata["runtime"]["name"] == "litert" and table.metadata["target"] == "tflite"
    predictor = LatencyPredictor(space, LatencyTable.load(bundle / "lut.json"))
    assert predictor.served_resolutions == [24]
    codes = space.sample_codes(50, 0)
    codes[:, -1] = space.resolutions.index(24)
    assert np.all(predictor.predict(codes) > 0)


def test_import_refuses_incomplete_results(tmp_path):
    space = get_space("tiny-mbv3")
    bundle = write_bundle(space, tmp_path / "b", resolutions=[24], protocol=Protocol.quick(), passes=1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    records = [{"key": e["key"], "pass": 0, "mean": 1.0, "median": 1.0, "std": 0.1, "p5": 0.9, "p95": 1.1,
                "min": 0.9, "n": 5, "unstable": False, "iqr_ratio": 0.01} for e in manifest["entries"][:-1]]
    (bundle / "results.json").write_text(json.dumps({
        "format": "hwnas-bundle-results", "version": 1, "space_hash": manifest["space_hash"], "device": {},
        "runtime": {"name": "litert"}, "protocol": manifest["protocol"], "passes": 1, "seconds": 1.0,
        "records": records}))
    with pytest.raises(ValueError, match="1 ops not measured"):
        import_results(bundle)


FAKE_ADB = textwrap.dedent("""\
    #!{python}
    import sys, zlib
    args = sys.argv[1:]
    with open({log!r}, "a") as log:
        log.write(" ".join(args) + "\\n")
    if "shell" in args:
        command = args[args.index("shell") + 1]
        if command.startswith("getprop"):
            print("Pixel 7")
        elif "benchmark_model" in command and "--graph=" in command:
            graph = command.split("--graph=")[1].split()[0]
            avg = 200 + zlib.crc32(graph.encode()) % 3000
            print(open({sample!r}).read().replace("avg=1188.4", f"avg={{avg}}"))
""")


def test_adb_flow_with_a_fake_adb(tmp_path, monkeypatch):
    sample = tmp_path / "sample.txt"
    sample.write_text(NEW_LAYOUT)
    log = tmp_path / "adb.log"
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable, log=str(log), sample=str(sample)))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    monkeypatch.setenv("HWNAS_ADB", str(adb))
    space = get_space("tiny-mbv3")
    table = profile_over_adb(space, "SERIAL1", binary, tmp_path / "out", resolutions=[24], passes=1)
    assert table.metadata["device"] == "Pixel 7 (adb SERIAL1)"
    assert len(table) == len(space.all_signatures([24]))
    calls = log.read_text().splitlines()
    assert all(call.startswith("-s SERIAL1") for call in calls)
    assert sum("push" in c and ".tflite" in c for c in calls) == len(table)
    entry = table.get(table.keys()[0])
    assert entry["n"] == 811 and entry["median"] == pytest.approx(1.181)
    with pytest.raises(FileNotFoundError, match="benchmark_model binary not found"):
        profile_over_adb(space, "SERIAL1", tmp_path / "missing", tmp_path / "out2", resolutions=[24])
