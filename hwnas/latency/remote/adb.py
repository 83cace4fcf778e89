"""Android phones: push op models and a user-supplied ``benchmark_model`` over adb, parse what it prints.

``benchmark_model`` changed its output over TFLite releases (the op-profiling table lost its ``[start]``
column; summary lines gained fields), so the parser reads columns by header name and ``key=value``
pairs by key, never by position.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...journal import Journal
from ...space import SearchSpace
from ..profiler import interleaved_order, table_from_records
from ..table import LatencyTable, make_metadata

DEVICE_DIR = "/data/local/tmp/hwnas"
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=([-+0-9.eE]+)")
_INFERENCE_AVG = re.compile(r"Inference \(avg\):\s*([0-9.eE+-]+)")
_HEADER_CELL = re.compile(r"\[([^\]]+)\]")


def parse_summary(text: str) -> dict[str, float]:
    """Timing summary in ms from benchmark_model output: the last ``count=... avg=...`` line (µs in the output)."""
    lines = [line for line in text.splitlines() if "count=" in line and "avg=" in line]
    if not lines:
        match = _INFERENCE_AVG.search(text)
        if not match:
            raise ValueError("benchmark_model output has no timing summary (no 'count=... avg=...' line and no "
                             "'Inference (avg)' field)")
        return {"avg_ms": float(match.group(1)) / 1000.0}
    pairs = {key: float(value) for key, value in _PAIR.findall(lines[-1])}  # the last one is the timed run
    summary = {"count": int(pairs["count"])} if "count" in pairs else {}
    for key in ("avg", "std", "min", "max", "first", "median", "p5", "p50", "p95"):
        if key in pairs:
            summary[f"{'median' if key == 'p50' else key}_ms"] = pairs[key] / 1000.0
    if "avg_ms" not in summary or not math.isfinite(summary["avg_ms"]):
        raise ValueError(f"benchmark_model summary line has no usable avg: {lines[-1]!r}")
    return summary


def parse_op_table(text: str, title: str = "Run Order") -> list[dict[str, Any]]:
    """Rows of the op-profiling table headed ``title``, each a dict keyed by the header names."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if title in line and "=" in line), None)
    if start is None:
        return []
    header_index = next((i for i in range(start + 1, len(lines)) if "[node type]" in lines[i]), None)
    if header_index is None:
        raise ValueError(f"benchmark_model '{title}' table has no header line")
    names = _HEADER_CELL.findall(lines[header_index])
    rows = []
    for line in lines[header_index + 1:]:
        if not line.strip() or line.lstrip().startswith("="):
            break
        cells = line.strip().split(None, len(names) - 1)
        if len(cells) != len(names):
            raise ValueError(f"benchmark_model row does not match its header {names}: {line!r}")
        row: dict[str, Any] = {}
        for name, cell in zip(names, cells):
            text_cell = cell.strip().rstrip("%")
            try:
                row[name] = float(text_cell)
            except ValueError:
                row[name] = cell.strip()
        rows.append(row)
    return rows


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Summary (ms) plus, when op profiling was on, per-node average ms by node type."""
    result: dict[str, Any] = parse_summary(text)
    rows = parse_op_table(text)
    if rows:
        result["ops"] = [{"node_type": r["node type"], "avg_ms": r["avg ms"], "name": r.get("Name", "")} for r in rows]
    return result


def _adb() -> str:
    return os.environ.get("HWNAS_ADB", "adb")


def _run(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise RuntimeError(f"{args[0]} not found: install Android platform-tools or set HWNAS_ADB") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after 600 s: {shlex.join(args)}") from None
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def profile_over_adb(space: SearchSpace, serial: str, benchmark_model: str | Path, out_dir: str | Path,
                     resolutions: Sequence[int] | None = None, threads: int = 1, passes: int = 2,
                     warmup_runs: int = 20, num_runs: int = 100, seed: int = 0) -> LatencyTable:
    """Time every op of ``space`` on the phone ``serial`` with ``benchmark_model``; write ``out_dir/lut.json``."""
    from ..targets.tflite import TfliteTarget

    binary = Path(benchmark_model)
    if not binary.is_file():
        raise FileNotFoundError(f"{binary}: benchmark_model binary not found (build or download it for the phone's ABI)")
    adb = [_adb(), "-s", serial]
    resolutions = list(space.resolutions if resolutions is None else resolutions)
    signatures = space.all_signatures(resolutions)
    out = Path(out_dir)
    header = {"space_hash": space.content_hash, "target": f"adb:{serial}", "runtime_version": binary.name,
              "threads": threads, "resolutions": resolutions, "protocol": {"warmup_runs": warmup_runs,
                                                                           "num_runs": num_runs},
              "passes": passes, "seed": seed}
    journal = Journal(out / "journal.jsonl", header)
    _run([*adb, "shell", f"mkdir -p {DEVICE_DIR}"])
    _run([*adb, "push", str(binary), f"{DEVICE_DIR}/benchmark_model"])
    _run([*adb, "shell", f"chmod +x {DEVICE_DIR}/benchmark_model"])
    builder = TfliteTarget.__new__(TfliteTarget)  # model building needs no local interpreter
    todo = interleaved_order(len(signatures), passes, seed)
    pushed: set[int] = set()
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=len(todo), desc=f"profile on {serial}", unit="op") as bar:
        for pass_index, i in todo:
            sig = signatures[i]
            if not journal.done(sig.key, pass_index):
                remote = f"{DEVICE_DIR}/{i:04d}.tflite"
                if i not in pushed:
                    local = Path(tmp) / f"{i:04d}.tflite"
                    local.write_bytes(builder.build_op(sig, seed=int(i)).payload)
                    _run([*adb, "push", str(local), remote])
                    pushed.add(int(i))
                text = _run([*adb, "shell", f"{DEVICE_DIR}/benchmark_model --graph={remote} --num_threads={threads} "
                             f"--warmup_runs={warmup_runs} --num_runs={num_runs} --use_xnnpack=true"])
                summary = parse_summary(text)
                journal.append(sig.key, pass_index, {
                    "mean": summary["avg_ms"], "median": summary.get("median_ms", math.nan),
                    "std": summary.get("std_ms", math.nan), "p5": summary.get("p5_ms", math.nan),
                    "p95": summary.get("p95_ms", math.nan), "min": summary.get("min_ms", math.nan),
                    "n": summary.get("count", num_runs), "unstable": False})
            bar.update()
    model = _run([*adb, "shell", "getprop ro.product.model"]).strip() or serial
    records = {sig.key: [journal.records[(sig.key, p)] for p in range(passes)] for sig in signatures}
    table = table_from_records(records, make_metadata(
        device=f"{model} (adb {serial})", runtime={"name": "benchmark_model", "version": binary.name,
                                                   "provider": "XNNPACK", "threads": threads},
        precision="fp32", batch=1, space_hash=space.content_hash, space=space.name, target="adb",
        resolutions=resolutions,
        protocol={"tool": "benchmark_model", "warmup_runs": warmup_runs, "num_runs": num_runs, "passes": passes,
                  "additive_value": "benchmark_model's avg", "combine": "per entry, the pass with the lowest avg"},
    ))
    table.save(out / "lut.json")
    return table
