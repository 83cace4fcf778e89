"""Remote boards: write every op model plus a manifest and a standalone runner; import what it measured.

The bundle holds ``models/NNNN.tflite`` (hwnas's own TFLite writer, so the board times the ops a deployed
subnet contains), ``manifest.json``, ``runner.py`` and the two numpy-only modules it needs
(``hwnas_protocol.py``, ``hwnas_litert.py`` — copies of hwnas's own, not re-implementations).
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...atomic import read_json, write_json_atomic
from ...space import SearchSpace
from .. import protocol as protocol_module
from ..profiler import DEFAULT_PASSES, table_from_records
from ..protocol import Protocol
from ..table import LatencyTable, make_metadata

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
RESULTS = "results.json"


def write_bundle(space: SearchSpace, out_dir: str | Path, resolutions: Sequence[int] | None = None,
                 threads: int = 1, protocol: Protocol | None = None, passes: int = DEFAULT_PASSES, seed: int = 0) -> Path:
    """Write the op models of ``space`` at ``resolutions`` and everything needed to time them on a board."""
    from ..targets.tflite import TfliteTarget

    out = Path(out_dir)
    (out / "models").mkdir(parents=True, exist_ok=True)
    resolutions = list(space.resolutions if resolutions is None else resolutions)
    signatures = space.all_signatures(resolutions)
    target = TfliteTarget.__new__(TfliteTarget)  # model building needs no interpreter
    entries = []
    for index, sig in enumerate(tqdm(signatures, desc="write op models", unit="op")):
        model = target.build_op(sig, seed=index)
        name = f"models/{index:04d}.tflite"
        (out / name).write_bytes(model.payload)
        entries.append({"key": sig.key, "file": name, "input_shape": list(model.input_shape)})
    shutil.copyfile(HERE / "board_runner.py", out / "runner.py")  # never imported here: it runs on the board
    shutil.copyfile(protocol_module.__file__, out / "hwnas_protocol.py")
    shutil.copyfile(HERE / "litert_runner.py", out / "hwnas_litert.py")
    manifest = {"format": "hwnas-bundle", "version": 1, "space": space.name, "space_hash": space.content_hash,
                "resolutions": resolutions, "threads": threads, "passes": passes, "seed": seed,
                "protocol": asdict(protocol or Protocol()), "entries": entries}
    write_json_atomic(out / MANIFEST, manifest)
    return out


def import_results(bundle_dir: str | Path, output: str | Path | None = None, device: str | None = None) -> LatencyTable:
    """Turn ``results.json`` of a bundle into a LatencyTable (same pass-combining rule as local profiles)."""
    bundle = Path(bundle_dir)
    manifest = _load_json(bundle / MANIFEST, "hwnas-bundle")
    results = _load_json(bundle / RESULTS, "hwnas-bundle-results")
    if results["space_hash"] != manifest["space_hash"]:
        raise ValueError(f"{bundle / RESULTS}: space hash {results['space_hash']} does not match the manifest's")
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in results["records"]:
        by_key.setdefault(record["key"], []).append(record)
    missing = [e["key"] for e in manifest["entries"] if len(by_key.get(e["key"], [])) < manifest["passes"]]
    if missing:
        raise ValueError(f"{bundle / RESULTS}: {len(missing)} ops not measured in every pass (run runner.py again "
                         f"to finish), e.g. {missing[:3]}")
    host = results["device"]
    table = table_from_records(by_key, make_metadata(
        device=device or f"{host.get('hostname')} ({host.get('cpu')})", runtime=results["runtime"],
        precision="fp32", batch=1,
        protocol={**Protocol(**results["protocol"]).describe(), "passes": results["passes"],
                  "combine": "per entry, the pass with the lowest trimmed mean", "measured_by": "bundle runner.py"},
        space_hash=manifest["space_hash"], space=manifest["space"], target="tflite",
        resolutions=manifest["resolutions"], host=host, profile_seconds=results["seconds"],
    ))
    table.save(Path(output) if output else bundle / "lut.json")
    return table


def _load_json(path: Path, expected_format: str) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != expected_format or data.get("version") != 1:
        raise ValueError(f"{path}: not a version-1 {expected_format} file")
    return data


__all__ = ["write_bundle", "import_results", "MANIFEST", "RESULTS"]
