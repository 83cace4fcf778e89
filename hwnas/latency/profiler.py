"""``hwnas profile``: time every op a search space needs on one target and write a LatencyTable.

Each op is measured in ``passes`` short windows, one per pass, each pass in its own random order, so
that noisy moments on a shared machine hit an entry in some windows only. Between every two windows a
fixed op, the speed reference, is timed (``speed_reference``); entries none of whose windows caught the
machine's fast state are timed again until one does. Each entry keeps its fastest window (contention only
ever adds time). Tables built without a reference (remote bundles, phones over adb) skip the re-timing.
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
            "protocol": protocol.describe(), "passes": passes, "seed": seed, "speed_reference": reference.key,
            "precision": target.precision}


def windows_by_key(journal: Journal, keys: Sequence[str] | dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every window the journal holds for each of ``keys`` (the passes and any rounds timed again), by pass."""
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {key: [] for key in keys}
    for (key, pass_index), record in journal.records.items():
        if key in grouped:
            grouped[key].append((pass_index, record))
    return {key: [record for _, record in sorted(items, key=lambda item: item[0])] for key, items in grouped.items()}


def interleaved_order(count: int, passes: int, seed: int) -> list[tuple[int, int]]:
    """(pass, index) pairs: every index once per pass, each pass in its own seeded random order."""
    return [(p, int(i)) for p in range(passes) for i in np.random.default_rng(seed + p).permutation(count)]


def table_from_records(records: dict[str, list[dict[str, Any]]], metadata: dict[str, Any],
                       base_ms: float | None = None) -> LatencyTable:
    """A LatencyTable keeping each key's fastest window: ``speed_reference.combine`` (which also counts the
    fast windows) when the windows carry reference readings at ``base_ms``, else ``combine_passes``."""
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
    reference, reference_seed = ref.reference_signature(signatures)
    journal = Journal(out / JOURNAL_NAME, _header(space, target, resolutions, protocol, passes, seed, reference))
    host_start = host_description()
    started = time.time()
    runners: dict[str, Runner] = {}  # op models are small: keep them loaded across passes
    todo = sum(not journal.done(sig.key, p) for p in range(passes) for sig in signatures)
    bar = tqdm(total=len(signatures) * passes, initial=len(signatures) * passes - todo, disable=not progress,
               desc=f"profile {space.name} on {target.name}", unit="op")
    index_of = {sig.key: i for i, sig in enumerate(signatures)}
    reference_runner = target.runner(target.build_op(reference, seed=reference_seed))
    timer = ref.WindowTimer(reference_runner)

    def time_window(key: str, pass_index: int) -> None:
        if journal.done(key, pass_index):
            return
        if key not in runners:
            runners[key] = target.runner(target.build_op(signatures[index_of[key]], seed=index_of[key]))

        def window() -> dict[str, Any]:
            result = measure(runners[key], protocol)
            return {**result.stats(), "iqr_ratio": result.iqr_ratio, "unstable": result.unstable,
                    "attempts": result.attempts, "load_avg": host_description()["load_avg"][0]}

        journal.append(key, pass_index, timer.time(window))
        bar.update()

    try:
        with bar:
            for pass_index, index in interleaved_order(len(signatures), passes, seed):
                time_window(signatures[index].key, pass_index)
            bar.set_description(f"profile {space.name} on {target.name}: timing again what caught no fast state")
            rounds = ref.settle(lambda: windows_by_key(journal, index_of), passes, time_window, seed)
    finally:  # a failing op must not leave every loaded session open
        for runner in [*runners.values(), reference_runner]:
            runner.close()
    records = windows_by_key(journal, index_of)
    speed = ref.summary(reference, reference_seed, records, passes, rounds)
    table = table_from_records(records, make_metadata(
        device=host_start["cpu"] if target.name != "torch-cuda" else target.describe().get("device", "gpu"),
        runtime=target.describe(),
        precision=target.precision,
        batch=1,
        protocol={**protocol.describe(), "passes": passes, "order": f"random per pass (seed {seed})",
                  "combine": "per entry, its fastest window, after timing again entries without a window in the "
                             "machine's fast state (see speed_reference)"},
        space_hash=space.content_hash,
        space=space.name,
        target=target.name,
        resolutions=resolutions,
        host=host_start,
        host_end=host_description(),
        profile_seconds=round(time.time() - started, 1),
        speed_reference=speed,
    ), base_ms=speed["base_ms"])
    table.save(out / LUT_NAME)
    return table
