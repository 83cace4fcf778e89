"""``hwnas lut validate``: measure whole subnets end to end, fit the calibration, report honestly.

Subnets are built from the same static ops the profiler timed, exported whole to the same runtime and
measured with the same protocol. The calibration is fitted on one half and every figure in the report
comes from the other half; the uncalibrated figures are reported beside them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..atomic import write_json_atomic
from ..journal import Journal
from ..plotting import pyplot, save_png
from ..space import Arch, SearchSpace
from . import calibration as cal
from . import speed_reference as ref
from .predictor import LatencyPredictor
from .profiler import DEFAULT_PASSES, interleaved_order, windows_by_key
from .protocol import Protocol, measure
from .table import LatencyTable
from .targets.base import Target, host_description, static_subnet

VALIDATION_JSON = "validation.json"
VALIDATION_PNG = "validation.png"
JOURNAL_NAME = "validation_journal.jsonl"
SAMPLING = ("size-stratified over depth and width: smallest to largest arch at every resolution, shallow-wide and "
            "deep-narrow between (see sample_archs)")


def sample_archs(space: SearchSpace, resolutions: list[int], n: int, seed: int) -> list[Arch]:
    """``n`` archs stratified over depth and over width (so over MACs), at ``resolutions`` in turn.

    Uniformly random archs all land near the middle of the latency range (every block's choice averages
    out), so a calibration fitted on them extrapolates to the smallest and largest subnets, where the op
    sum bends most (fixed costs dominate at the bottom, weights fall out of cache at the top). Here each
    resolution's archs get a *depth level* and a *width level* in [0, 1], each evenly spaced over the
    archs of that resolution; the ends and every other pair of rows between pair the two equally (the
    diagonal: sizes from the smallest arch to the largest without a gap; MACs climb steeply near the top)
    and the other pairs at random (a Latin square over the same levels: shallow-wide and deep-narrow archs,
    whose latency the op sum may price differently). Each depth choice is drawn as index
    ``~ Binomial(k - 1, depth level)`` over its ``k`` sorted options, each kernel and expand choice likewise
    from the width level.
    """
    rng = np.random.default_rng(seed)
    per_resolution = [list(range(j, n, len(resolutions))) for j in range(len(resolutions))]
    depth_level, width_level = np.empty(n), np.empty(n)
    for rows in per_resolution:
        levels = np.linspace(0.0, 1.0, len(rows)) if len(rows) > 1 else np.array([0.5])
        paired = levels.copy()  # the diagonal, which fills the MACs range evenly ...
        off_diagonal = [k for k in range(2, len(rows) - 3) if (k // 2) % 2 == 1]  # ... and every other pair of
        paired[off_diagonal] = rng.permutation(levels[off_diagonal])  # middle rows paired at random (fit, held out)
        depth_level[rows], width_level[rows] = levels, paired
    cardinalities = space.code_cardinalities()[:-1]  # choice lists are sorted ascending
    width_genes = 2 * space.num_blocks  # kernel sizes then expand ratios; the stage depths follow
    level = np.concatenate([np.repeat(width_level[:, None], width_genes, axis=1),
                            np.repeat(depth_level[:, None], len(cardinalities) - width_genes, axis=1)], axis=1)
    codes = rng.binomial(cardinalities[None, :] - 1, level).astype(np.int32)
    resolution_codes = np.array([space.resolutions.index(resolutions[i % len(resolutions)]) for i in range(n)])
    return space.decode(np.concatenate([codes, resolution_codes[:, None].astype(np.int32)], axis=1))


def measure_subnets(space: SearchSpace, target: Target, archs: list[Arch], journal_path: Path, protocol: Protocol,
                    passes: int, seed: int, progress: bool) -> np.ndarray:
    """End-to-end latency (ms) of each arch: its fastest window over interleaved passes, after timing again the
    archs none of whose windows caught the machine's fast state (``speed_reference``); journaled.
    ``measure_subnets_with_speed`` also returns how fast the machine ran."""
    return measure_subnets_with_speed(space, target, archs, journal_path, protocol, passes, seed, progress)[0]


def measure_subnets_with_speed(space: SearchSpace, target: Target, archs: list[Arch], journal_path: Path,
                               protocol: Protocol, passes: int, seed: int,
                               progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """``measure_subnets`` and the run's speed reference (``speed_reference.summary``).

    The reference is the op the profiler would pick for the archs' resolutions, built with the profiler's seed
    for it, so ``base_ms`` compares with a LUT's ``speed_reference.base_ms``. Built models are kept (bytes) and
    loaded again for each window: holding every session open at once would cost gigabytes for full-size spaces.
    """
    resolutions = sorted({a.r for a in archs})
    signatures = space.all_signatures(resolutions)
    reference, reference_seed = ref.reference_signature(signatures)
    header = {"space_hash": space.content_hash, "target": target.name, "runtime_version": target.describe().get("version"),
              "threads": target.threads, "resolutions": resolutions, "protocol": protocol.describe(),
              "passes": passes, "seed": seed, "archs": [a.to_dict() for a in archs], "speed_reference": reference.key,
              "precision": target.precision}
    journal = Journal(journal_path, header)
    keys = [a.to_json() for a in archs]
    index_of = {key: i for i, key in enumerate(keys)}
    built: dict[int, Any] = {}
    todo = interleaved_order(len(archs), passes, seed + 1000)
    with target.runner(target.build_op(reference, seed=reference_seed)) as reference_runner, \
            tqdm(total=len(todo), disable=not progress, desc=f"validate on {target.name}", unit="subnet") as bar:
        timer = ref.WindowTimer(reference_runner)

        def window(runner: Any) -> dict[str, Any]:
            result = measure(runner, protocol)
            return {**result.stats(), "unstable": result.unstable}

        def time_window(key: str, pass_index: int) -> None:
            i = index_of[key]
            if not journal.done(key, pass_index):
                if i not in built:
                    built[i] = target.build_subnet(static_subnet(space.signatures(archs[i]), seed=int(i)), archs[i].r)
                with target.runner(built[i]) as runner:
                    journal.append(key, pass_index, timer.time(lambda: window(runner)))
            bar.update()

        for pass_index, i in todo:
            time_window(keys[i], pass_index)
        bar.set_description(f"validate on {target.name}: timing again what caught no fast state")
        rounds = ref.settle(lambda: windows_by_key(journal, index_of), passes, time_window, seed + 1000)
    records = windows_by_key(journal, index_of)
    speed = ref.summary(reference, reference_seed, records, passes, rounds)
    kept = [ref.combine(records[key], speed["base_ms"]) for key in keys]
    return np.array([k["mean"] for k in kept]), speed


def features_of(space: SearchSpace, table: LatencyTable, archs: list[Arch]) -> cal.Features:
    """Raw op sum, op count and border elements of each arch (the table's own calibration ignored)."""
    raw = LatencyTable.loads(table.dumps())
    raw.update_metadata(calibration=None)
    sums = LatencyPredictor(space, raw).predict(archs)
    signatures = [space.signatures(a) for a in archs]
    return cal.Features(raw_sum=sums, n_ops=np.array([len(s) for s in signatures], dtype=np.float64),
                        io=np.array([sum(sig.io_elements for sig in s) for s in signatures], dtype=np.float64),
                        params=np.array([sum(sig.params for sig in s) for s in signatures], dtype=np.float64))


def plot(path: Path, measured: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, holdout: np.ndarray,
         title: str) -> None:
    """Predicted vs measured latency for the held-out subnets, raw and calibrated, with ±10% bands."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    lo, hi = 0.9 * min(measured.min(), raw.min()), 1.1 * max(measured.max(), raw.max())
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", lw=1, label="exact")
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="0.85", label="±10%")
    ax.fill_between(line, 0.95 * line, 1.05 * line, color="0.7", label="±5%")
    ax.scatter(measured[holdout], raw[holdout], s=14, marker="x", color="tab:red", label="op sum (uncalibrated)")
    ax.scatter(measured[holdout], calibrated[holdout], s=14, color="tab:blue", label="calibrated LUT")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured end-to-end latency (ms)", ylabel="predicted latency (ms)",
           title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def validate(space: SearchSpace, target: Target, lut_dir: str | Path, n: int = 120, resolutions: list[int] | None = None,
             protocol: Protocol | None = None, passes: int = DEFAULT_PASSES, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Validate ``lut_dir/lut.json`` end to end; store the calibration in it; write the report and plot."""
    if n < 10:
        raise ValueError(f"n={n}: validation needs at least 10 subnets (half fit, half held out)")
    lut_dir = Path(lut_dir)
    table = LatencyTable.load(lut_dir / "lut.json")
    if table.precision != target.precision:
        raise ValueError(f"{lut_dir / 'lut.json'} prices {table.precision} ops; validating it on {target.precision} "
                         f"subnets would mix precisions (pass the target at precision {table.precision!r})")
    served = LatencyPredictor(space, table).served_resolutions
    resolutions = served if resolutions is None else [int(r) for r in resolutions]
    outside = sorted(set(resolutions) - set(served))
    if outside:
        raise ValueError(f"resolutions {outside} are not covered by {lut_dir / 'lut.json'} (served: {served})")
    protocol = protocol or Protocol()
    archs = sample_archs(space, resolutions, n, seed)
    measured, speed = measure_subnets_with_speed(space, target, archs, lut_dir / JOURNAL_NAME, protocol, passes, seed,
                                                 progress)
    profiled = table.metadata.get("speed_reference") or {}
    if profiled.get("key") == speed["key"] and profiled.get("base_ms"):
        speed["vs_profile"] = speed["base_ms"] / float(profiled["base_ms"])
    features = features_of(space, table, archs)
    fit_idx, holdout_idx = np.arange(0, n, 2), np.arange(1, n, 2)
    model, params, cv_scores = cal.choose(features.subset(fit_idx), measured[fit_idx])
    candidates = {}
    for name in cal.MODELS:
        fitted = cal.fit(name, features.subset(fit_idx), measured[fit_idx])
        if fitted is not None:
            score = cv_scores[name]
            candidates[name] = {"params": fitted, "cv_rmspe_pct": score if np.isfinite(score) else None,
                                "holdout": cal.metrics(cal.apply(fitted, features.subset(holdout_idx)),
                                                       measured[holdout_idx])}
    raw = features.raw_sum
    calibrated = cal.apply(params, features)
    report = {
        "space": space.name, "space_hash": space.content_hash, "runtime": target.describe(),
        "host": host_description(), "protocol": {**protocol.describe(), "passes": passes}, "seed": seed,
        "n": n, "resolutions": resolutions, "sampling": SAMPLING, "speed_reference": speed,
        "split": "even indices fit the calibration, odd indices are held out",
        "model": model, "calibration": params,
        "holdout_uncalibrated": cal.metrics(raw[holdout_idx], measured[holdout_idx]),
        "holdout_calibrated": cal.metrics(calibrated[holdout_idx], measured[holdout_idx]),
        "fit_calibrated": cal.metrics(calibrated[fit_idx], measured[fit_idx]),
        "candidates": candidates,
        "subnets": [{"arch": a.to_dict(), "measured_ms": float(m), "op_sum_ms": float(s), "predicted_ms": float(p),
                     "macs": space.macs(a), "depth": sum(a.d), "role": "fit" if i % 2 == 0 else "holdout"}
                    for i, (a, m, s, p) in enumerate(zip(archs, measured, raw, calibrated))],
    }
    write_json_atomic(lut_dir / VALIDATION_JSON, report)
    holdout_mask = np.zeros(n, dtype=bool)
    holdout_mask[holdout_idx] = True
    summary = report["holdout_calibrated"]
    plot(lut_dir / VALIDATION_PNG, measured, raw, calibrated, holdout_mask,
         f"{space.name} on {target.name}: {summary['within_10pct']:.0%} within ±10%, RMSPE {summary['rmspe_pct']:.1f}%")
    table.set_calibration(params["scale"], params["offset"], per_op=params["per_op"],
                          per_element=params["per_element"], per_param=params["per_param"], model=model,
                          validation={k: report[k] for k in ("n", "resolutions", "holdout_uncalibrated",
                                                             "holdout_calibrated")})
    table.save(lut_dir / "lut.json")
    return report
