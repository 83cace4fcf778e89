"""``hwnas profile``: time every op a search space needs on one target and write a LatencyTable.

Each op is measured in ``passes`` short windows, one per pass, each pass in its own random order, so
that noisy moments on a shared machine hit an entry in some windows only. Between every two windows a
fixed op, the speed reference, is timed (``speed_reference``): an entry keeps its fastest window (contention
only ever adds time) unless no window caught the machine's fast state, and then its windows priced at the
reference speed. Tables built without a reference (remote bundles, phones over adb) keep the fastest window.
Progress is journaled: a killed run resumes.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..journal import Journal
from ..space import OpSignature, SearchSpace
from . import speed_reference as ref
from .protocol import Protocol, measure
from .table import LatencyTable, make_metadata
from .targets.base import Runner, Target, host_description

LUT_NAME = "lut.json"
JOURNAL_NAME = "journal.jsonl"
DEFAULT_PASSES = 8


def _header(space: SearchSpace, target: Target, resolutions: list[int], protocol: Protocol, passes: int,
            seed: int, reference: OpSignature) -> dict[str, Any]:
    runtime = target.describe()
    return {"space": space.name, "space_hash": space.content_hash, "target": target.name,
            "runtime_version": runtime.get("version"), "threads": target.threads, "resolutions": resolutions,
            "protocol": protocol.describe(), "passes": passes, "seed": seed, "speed_reference": reference.key}


def interleaved_order(count: int, passes: int, seed: int) -> list[tuple[int, int]]:
    """(pass, index) pairs: every index once per pass, each pass in its own seeded random order."""
    return [(p, int(i)) for p in range(passes) for i in np.random.default_rng(seed + p).permutation(count)]


def table_from_records(records: dict[str, list[dict[str, Any]]], metadata: dict[str, Any],
                       base_ms: float | None = None) -> LatencyTable:
    """A LatencyTable from each key's measured windows: ``speed_reference.combine`` at the reference speed
    ``base_ms`` when the windows carry reference readings, else the fastest window (``combine_passes``)."""
    kept = {key: combine_passes(windows) if base_ms is None else ref.combine(windows, base_ms)
            for key, windows in records.items()}
    table = LatencyTable(metadata={
        **metadata,
        "unstable_keys": sorted(k for k, r in kept.items() if r.get("unstable")),
        "max_pass_spread": round(max((r["pass_spread"] for r in kept.values()), default=0.0), 4),
    })
    keys = list(kept)
    stats = np.array([[kept[k][f] for f in ("mean", "median", "std", "p5", "p95", "min")] for k in keys], dtype=float)
    table.set_many(keys, stats.reshape(-1, 6), np.array([int(kept[k]["n"]) for k in keys], dtype=np.int64))
    return table


def combine_passes(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The kept measurement of one key: the pass with the lowest trimmed mean, plus how far passes agreed."""
    best = min(records, key=lambda r: r["mean"])
    means = [r["mean"] for r in records]
    spread = (max(means) - min(means)) / min(means) if min(means) > 0 else 0.0
    return {**best, "pass_spread": spread}


def profile(
    space: SearchSpace,
    target: Target,
    out_dir: str | Path,
    resolutions: Sequence[int] | None = None,
    protocol: Protocol | None = None,
    passes: int = DEFAULT_PASSES,
    seed: int = 0,
    progress: bool = True,
) -> LatencyTable:
    """Measure every op of ``space`` at ``resolutions`` on ``target``; write ``out_dir/lut.json``."""
    if passes < 1:
        raise ValueError(f"passes={passes} must be >= 1")
    protocol = protocol or Protocol()
    resolutions = list(space.resolutions if resolutions is None else resolutions)
    signatures: list[OpSignature] = space.all_signatures(resolutions)
    out = Path(out_dir)
    reference = ref.reference_signature(signatures)
    reference_seed = signatures.index(reference)
    journal = Journal(out / JOURNAL_NAME, _header(space, target, resolutions, protocol, passes, seed, reference))
    host_start = host_description()
    started = time.time()
    runners: dict[str, Runner] = {}  # op models are small: keep them loaded across passes
    todo = sum(not journal.done(sig.key, p) for p in range(passes) for sig in signatures)
    bar = tqdm(total=len(signatures) * passes, initial=len(signatures) * passes - todo, disable=not progress,
               desc=f"profile {space.name} on {target.name}", unit="op")
    reference_runner = target.runner(target.build_op(reference, seed=reference_seed))
    last_reading: float | None = None  # the reference reading right after the previous window
    with bar:
        for pass_index, index in interleaved_order(len(signatures), passes, seed):
            sig = signatures[index]
            if journal.done(sig.key, pass_index):
                continue
            if sig.key not in runners:
                runners[sig.key] = target.runner(target.build_op(sig, seed=index))
            before = last_reading if last_reading is not None else ref.time_reference(reference_runner)
            result = measure(runners[sig.key], protocol)
            last_reading = ref.time_reference(reference_runner)
            journal.append(sig.key, pass_index, {**result.stats(), "iqr_ratio": result.iqr_ratio,
                                                 "unstable": result.unstable, "attempts": result.attempts,
                                                 "ref_before": before, "ref_after": last_reading,
                                                 "load_avg": host_description()["load_avg"][0]})
            bar.update()
    for runner in [*runners.values(), reference_runner]:
        runner.close()
    records = {sig.key: [journal.records[(sig.key, p)] for p in range(passes)] for sig in signatures}
    readings = ref.readings_of([r for windows in records.values() for r in windows])
    base_ms = ref.base_speed(readings)
    kept = [ref.combine(w, base_ms) for w in records.values()]
    speed = {"key": reference.key, "seed": reference_seed, "base_ms": base_ms, "method": ref.METHOD,
             "readings": len(readings), "median_ms": float(np.median(readings)),
             "p90_ms": float(np.percentile(readings, 90)), "windows": len(signatures) * passes,
             "steady_windows": sum(k["steady_windows"] for k in kept),
             "priced_entries": sum(bool(k["priced"]) for k in kept)}
    table = table_from_records(records, make_metadata(
        device=host_start["cpu"] if target.name != "torch-cuda" else target.describe().get("device", "gpu"),
        runtime=target.describe(),
        precision="fp32",
        batch=1,
        protocol={**protocol.describe(), "passes": passes, "order": f"random per pass (seed {seed})",
                  "combine": "per entry, the median of its windows priced at the speed reference (see speed_reference)"},
        space_hash=space.content_hash,
        space=space.name,
        target=target.name,
        resolutions=resolutions,
        host=host_start,
        host_end=host_description(),
        profile_seconds=round(time.time() - started, 1),
        speed_reference=speed,
    ), base_ms=base_ms)
    table.save(out / LUT_NAME)
    return table
