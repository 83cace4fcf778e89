"""Few-shot LUT adaptation (``hwnas lut adapt``) on HELP's measured GPU latencies, and ort → TFLite on this CPU.

For every device × batch of HELP's OFA data (5,000 OFA-MBv3 w1.2 subnets, r 128–224; 2080ti / titan_rtx /
titan_xp at batch 1, 32, 64) the device is left out: the family prior is fitted on the two other GPUs'
subnets at the same batch, then 5, 10 or 20 runs of the held-out device (probe archs or random archs, 20
repeats each) fit the few scalars. Every figure is on the held-out device's other subnets (never the runs).
Baselines side by side: MACs (one scale fitted on the same runs), the unadapted source LUT (OFA's Note10),
one scale on the source, the adaptation without a prior, and the additive model's ceiling (fitted on 80%
of the held-out device's own subnets, scored on the rest: what no LUT-shaped model can beat).
Second part: the onnxruntime LUT adapted to TFLite from 10 of the TFLite profile's validation subnets,
scored on its held-out ones. Prints a markdown section (run_all.py puts it into RESULTS.md).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _help_data as help_data  # noqa: E402  (a module beside the scripts, not a benchmark)

import hwnas  # noqa: E402
from hwnas.latency import adapt as A  # noqa: E402
from hwnas.stats import spearman_rho  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTE10 = ROOT / "device_profiles" / "note10-ofa-mbv3-w1.2" / "lut.json"
ORT = ROOT / "device_profiles" / "ort-cpu-1t-ofa-mbv3-w1.0" / "lut.json"
TFLITE_VALIDATION = ROOT / "device_profiles" / "tflite-1t-ofa-mbv3-w1.0" / "validation.json"
REPEATS = int(os.environ.get("HWNAS_ADAPT_REPEATS", 20))
SIZES = (5, 10, 20)
PROBE_POOL = 2500  # probes are chosen among this many of HELP's measured archs (a fresh subset per repeat)


def scores(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    error = predicted / measured - 1
    return np.array([spearman_rho(predicted, measured), np.mean(np.abs(error) <= 0.10), 100 * np.sqrt(np.mean(error**2))])


def one_scale(feature: np.ndarray, latency: np.ndarray) -> float:
    """Least squares on relative error of latency ≈ s·feature."""
    x = feature / latency
    return float(np.sum(x) / np.sum(x * x))


def ceiling(counts: np.ndarray, sums: np.ndarray, latency: np.ndarray, folds: int = 5) -> np.ndarray:
    """The additive per-group model fitted on the held-out device's own subnets, 5-fold: an upper bound."""
    order = np.random.default_rng(1).permutation(len(latency))
    predicted = np.empty(len(latency))
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        overhead, compute, offset = A.fit_device(counts[train], sums[train], latency[train])
        predicted[part] = counts[part] @ overhead + sums[part] @ compute + offset
    return scores(predicted, latency)


def slot_features(space: hwnas.SearchSpace, archs: list[hwnas.Arch]) -> np.ndarray:
    """Per arch: each block slot's kernel and expand one-hot where active, times 1, r and r² (r scaled), plus a
    one-hot of the resolution: a model free of the LUT's additive shape, for a second ceiling."""
    rows = []
    for a in archs:
        r = (a.r - 176) / 48
        active = set(space.active_slots(a))  # type: ignore[attr-defined]
        f: list[float] = []
        for slot in range(len(a.ks)):
            hot = [float(slot in active and a.ks[slot] == k) for k in space.ks] + \
                  [float(slot in active and a.e[slot] == e) for e in space.expand]
            f += hot + [v * r for v in hot] + [v * r * r for v in hot]
        f += [float(a.r == v) for v in space.resolutions] + [1.0]
        rows.append(f)
    return np.array(rows)


def ceiling_slots(features: np.ndarray, latency: np.ndarray, folds: int = 5) -> np.ndarray:
    """A linear model on :func:`slot_features` fitted on relative error, 5-fold on the device's own subnets."""
    order = np.random.default_rng(1).permutation(len(latency))
    predicted = np.empty(len(latency))
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        design = features[train] / latency[train, None]
        w = np.linalg.solve(design.T @ design + 1e-3 * np.eye(features.shape[1]), design.T @ np.ones(len(train)))
        predicted[part] = features[part] @ w
    return scores(predicted, latency)


def best_time(predictor: hwnas.LatencyPredictor, codes: np.ndarray, repeats: int = 20) -> float:
    """Fastest of ``repeats`` timed ``predict`` calls on ``codes`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.predict(codes)
        times.append(time.perf_counter() - t0)
    return min(times)


def fmt(v: np.ndarray) -> str:
    return f"{v[0]:.3f} / {v[1]:.0%} / {v[2]:.1f}"


def help_section(space: hwnas.SearchSpace, lines: list[str]) -> dict:
    source = hwnas.LatencyTable.load(NOTE10)
    layout = A.Layout.build(space, source)
    archs = [hwnas.Arch.from_dict(a) for a in help_data.archs()]
    codes = space.encode(archs)
    counts, sums = layout.features(codes)
    macs = np.array([space.macs(a) for a in archs], dtype=np.float64)
    axes = A.probe_axes(space, archs)
    note10 = sums.sum(axis=1)  # the source's op sum (resolutions < 160 filled as documented)
    plain = A.Prior.plain(len(layout.groups))
    slots = slot_features(space, archs)
    source_predictor = hwnas.LatencyPredictor(space, source)
    lat = {(d, b): help_data.latencies(d, b) for d in help_data.DEVICES for b in help_data.BATCHES}
    results: dict = {}
    native_checks = []
    for b in help_data.BATCHES:
        for d in help_data.DEVICES:
            y = lat[(d, b)]
            others = {o: [A.Run(a, float(v)) for a, v in zip(archs, lat[(o, b)])] for o in help_data.DEVICES if o != d}
            prior = A.fit_prior(layout, others)
            po, pc = prior.parts(counts, sums)
            qo, qk = plain.kind_parts(counts, sums, layout)
            case = results.setdefault(f"{d}_b{b}", {"ceiling": ceiling(counts, sums, y), "slots": ceiling_slots(slots, y)})
            case["source_unadapted"] = scores(note10, y)
            for n in SIZES:
                for how in ("probes", "random"):
                    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("macs", "one_scale", "plain", "prior")}
                    for rep in range(REPEATS):
                        rng = np.random.default_rng(1000 * n + rep)
                        if how == "random":
                            idx = rng.choice(len(archs), n, replace=False)
                        else:
                            pool = rng.choice(len(archs), PROBE_POOL, replace=False)  # as probe_archs(candidates=)
                            idx = pool[A.spread(axes[pool], n)]
                        held = np.ones(len(archs), dtype=bool)
                        held[idx] = False
                        yr, yh = y[idx], y[held]
                        rows["macs"].append(scores(one_scale(macs[idx], yr) * macs[held], yh))
                        rows["one_scale"].append(scores(one_scale(note10[idx], yr) * note10[held], yh))
                        s, _ = A.fit_per_kind(qo[idx], qk[idx], yr, layout.kinds)  # the default without a prior
                        rows["plain"].append(scores(A.predict_kinds(s, qo, qk, layout.kinds)[held], yh))
                        s = A.fit_scalars(A.default_model(True), po[idx], pc[idx], yr)
                        predicted = A.predict_scalars(s, po, pc)
                        rows["prior"].append(scores(predicted[held], yh))
                        if n == 10 and how == "probes" and rep == 0:  # the real product path, native predictor
                            runs = [A.Run(archs[i], float(y[i])) for i in idx]
                            adapted = A.adapt(space, source, runs, layout=layout, prior=prior)
                            native = hwnas.LatencyPredictor(space, adapted.table)
                            via_lut = native.predict(codes)
                            served = codes[np.isin(codes[:, -1], np.flatnonzero(np.isin(space.resolutions, layout.served)))]
                            native_s = best_time(native, served)
                            source_s = best_time(source_predictor, served)
                            native_checks.append((float(np.max(np.abs(via_lut / predicted - 1))), native_s, source_s))
                    case[f"{how}{n}"] = {k: np.mean(v, axis=0) for k, v in rows.items()}
            print(f"  {d} b{b} done", file=sys.stderr)

    lines += ["", f"HELP's OFA data: 5,000 `{help_data.SPACE}` subnets (r 128–224) per device × batch; source LUT: OFA's "
              "Samsung Note10 (`device_profiles/note10-ofa-mbv3-w1.2`, 160–224; 128–156 filled from 160 by MACs). "
              f"Device left out: the prior is fitted on the two other GPUs at the same batch. {REPEATS} repeats per "
              "cell; every figure on the held-out device's subnets other than the runs. Cells: Spearman ρ / share "
              "within ±10% / RMSPE %.", ""]
    lines += ["| device, batch | ceiling: additive / per-slot linear (4,000 own subnets) | Note10 unadapted | runs | pick | "
              "MACs × scale | Note10 × scale | adapted, no prior | **adapted, family prior** |",
              "|---|---|---|---:|---|---|---|---|---|"]
    for key, case in results.items():
        first = True
        for n in SIZES:
            for how in ("probes", "random"):
                cell = case[f"{how}{n}"]
                head = [key, f"{fmt(case['ceiling'])}; {fmt(case['slots'])}", fmt(case["source_unadapted"])] if first \
                    else ["", "", ""]
                first = False
                lines.append("| " + " | ".join(head + [str(n), how, fmt(cell["macs"]), fmt(cell["one_scale"]),
                                                       fmt(cell["plain"]), f"**{fmt(cell['prior'])}**"]) + " |")
    worst = max(c[0] for c in native_checks)
    ratio = np.median([c[1] / c[2] for c in native_checks])
    lines += ["", f"The adapted LUTs (one per device × batch, 10 probe runs) answer through the native "
              f"`LatencyPredictor`: largest relative difference from the model's own arithmetic {worst:.1e}; "
              f"predicting the subnets at the source's resolutions takes {ratio:.2f}× the time of the source LUT's own "
              "predictor on the same codes (median over the 9 LUTs, fastest of 20 calls each)."]
    return results


def tflite_section(lines: list[str]) -> dict:
    space = hwnas.get_space("ofa-mbv3-w1.0")
    source = hwnas.LatencyTable.load(ORT)
    report = json.loads(TFLITE_VALIDATION.read_text())
    subnets = report["subnets"]
    archs = [hwnas.Arch.from_dict(s["arch"]) for s in subnets]
    measured = np.array([s["measured_ms"] for s in subnets])
    fit_pool = np.array([i for i, s in enumerate(subnets) if s["role"] == "fit"])
    holdout = np.array([i for i, s in enumerate(subnets) if s["role"] == "holdout"])
    layout = A.Layout.build(space, source)
    counts, sums = layout.features(archs)
    ort_sum = sums.sum(axis=1)
    macs = np.array([space.macs(a) for a in archs], dtype=np.float64)
    own = np.array([s["predicted_ms"] for s in subnets])  # the measured TFLite LUT, calibrated on the fit half
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("macs", "one_scale", "adapted_probes", "adapted_random",
                                                         "one_beta_probes", "one_beta_random")}
    kinds_used = []
    for rep in range(REPEATS):
        rng = np.random.default_rng(rep)
        random_idx = rng.choice(fit_pool, 10, replace=False)
        chosen = A.probe_archs(space, 10, seed=rep, candidates=[archs[i] for i in fit_pool])
        probe_idx = np.array([fit_pool[[archs[i] for i in fit_pool].index(a)] for a in chosen])
        y = measured[holdout]
        rows["macs"].append(scores(one_scale(macs[random_idx], measured[random_idx]) * macs[holdout], y))
        rows["one_scale"].append(scores(one_scale(ort_sum[random_idx], measured[random_idx]) * ort_sum[holdout], y))
        for pick, idx in (("probes", probe_idx), ("random", random_idx)):
            runs = [A.Run(archs[i], float(measured[i])) for i in idx]
            for name, model in (("adapted", "auto"), ("one_beta", "overhead+compute+offset")):
                adapted = A.adapt(space, source, runs, layout=layout, model=model)
                rows[f"{name}_{pick}"].append(
                    scores(hwnas.LatencyPredictor(space, adapted.table).predict([archs[i] for i in holdout]), y))
                if model == "auto":
                    kinds_used.append(adapted.report["per_kind"]["used"])
    out = {k: np.mean(v, axis=0) for k, v in rows.items()}
    out["ort_unadapted"] = scores(ort_sum[holdout], measured[holdout])
    out["tflite_measured_lut"] = scores(own[holdout], measured[holdout])
    lines += ["", f"On this CPU: `device_profiles/ort-cpu-1t-ofa-mbv3-w1.0` (onnxruntime) adapted to TFLite from 10 of the "
              f"{len(fit_pool)} fit-half subnets of `tflite-1t-ofa-mbv3-w1.0/validation.json` (no prior; {REPEATS} repeats), "
              f"scored on its {len(holdout)} held-out subnets (r 160/192/224, measured end to end with LiteRT+XNNPACK, "
              "1 thread). Cells: ρ / within ±10% / RMSPE %.", "",
              "| predictor | ρ / ±10% / RMSPE |", "|---|---|",
              f"| MACs × scale (10 random runs) | {fmt(out['macs'])} |",
              f"| onnxruntime LUT unadapted | {fmt(out['ort_unadapted'])} |",
              f"| onnxruntime LUT × scale (10 random runs) | {fmt(out['one_scale'])} |",
              f"| adapted, one β for all kinds (`overhead+compute+offset`), 10 probe runs | {fmt(out['one_beta_probes'])} |",
              f"| adapted, one β for all kinds, 10 random runs | {fmt(out['one_beta_random'])} |",
              f"| **adapted (default `per-kind`), 10 probe runs** | **{fmt(out['adapted_probes'])}** |",
              f"| adapted (default `per-kind`), 10 random runs | {fmt(out['adapted_random'])} |",
              f"| measured TFLite LUT, calibrated on all {len(fit_pool)} fit subnets (reference) | {fmt(out['tflite_measured_lut'])} |",
              "", f"The per-kind corrections passed their leave-one-out test in {sum(kinds_used)} of {len(kinds_used)} "
              "adaptations."]
    return out


def main() -> int:
    start = time.time()
    load = os.getloadavg()[0]
    lines = ["## Few-shot LUT adaptation (`benchmarks/adapt.py`)", "",
             f"Measured on {dt.date.today().isoformat()}: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, load average {load:.2f} at start (numpy only, no device needed)."]
    if help_data.available():
        help_section(hwnas.get_space(help_data.SPACE), lines)
    else:
        lines += ["", f"HELP's data not found at {help_data.HELP_OFA}: GPU part skipped."]
    tflite_section(lines)
    lines += ["", f"Wall time {time.time() - start:.0f} s."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
