"""``hwnas search``: from a trained supernet and device LUTs to the best subnet per latency budget.

Writes into ``out``: ``accuracy_dataset/`` (journaled measurements, resumable), ``accuracy_predictor.safetensors``
with its held-out report and ``accuracy_dataset.jsonl`` beside it (measured accuracies, where the search can
read them, take the predictor's place for the archs they hold: ``hwnas.search.measured``), ``results.json``
(per budget: the arch, its accuracy and where it comes from, measured holdout accuracy, latency per device,
MACs, params; and the Pareto fronts) and ``pareto.png``. A predictor passed with
``predictor=`` (or found in ``out``) is reused instead of measuring a new dataset.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json_atomic
from ..eval import EvalData, checkpoint_eval_data, process_group, subnet_accuracy
from ..latency.predictor import LatencyPredictor
from ..latency.table import LatencyTable, device_name
from ..nn.checkpoint import load_supernet, supernet_extra
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from .accuracy_predictor import AccuracyPredictor
from .dataset import build_accuracy_dataset
from .evolution import evolution_search
from .gradient import PENALTIES, gradient_search
from .measured import MeasuredAccuracies, beside_predictor
from .plots import plot_pareto

STRATEGIES = ("evolution", "gradient")


@dataclass(frozen=True)
class SearchOptions:
    supernet: str
    luts: Sequence[str]
    budgets_ms: Sequence[Sequence[float]]  # one list per LUT (empty: that device is only reported)
    out: str
    strategy: str = "evolution"
    data_dir: str | None = None          # overrides the folder the supernet recorded
    predictor: str | None = None
    measured_accuracies: str | None = None  # JSONL of measured {arch, accuracy}; default: the predictor's dataset
    use_measured: bool = True            # False: rank by the predictor alone
    n_archs: int = 500                   # accuracy dataset size
    sampling: str = "stratified-macs"    # how its archs are drawn (hwnas.search.dataset.SAMPLINGS)
    population: int = 100
    generations: int = 500
    max_macs: float | None = None
    max_params: float | None = None
    penalty: str = "abs"
    weight: float = 5.0
    steps: int = 300
    measure: bool = False                # re-measure the found archs end to end on each LUT's own runtime, here
    precision: str = "fp32"              # what the deployed model computes in: every LUT must price that precision
    check_holdout: bool = True           # measure each found arch's holdout accuracy (off: the caller measures it)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def parse_budgets(text: str, n_luts: int) -> list[list[float]]:
    """``"5,8,12;20,30,40"`` → one list per LUT (``;`` between LUTs, ``,`` between budgets)."""
    groups = text.split(";")
    if len(groups) != n_luts:
        raise ValueError(f"--latency-ms has {len(groups)} budget group(s) for {n_luts} LUT(s); separate them with ';'")
    try:
        return [[float(v) for v in group.replace(" ", "").split(",") if v] for group in groups]
    except ValueError:
        raise ValueError(f"--latency-ms {text!r}: budgets must be numbers in ms") from None


def _check(options: SearchOptions) -> None:
    if options.strategy not in STRATEGIES:
        raise ValueError(f"strategy={options.strategy!r}; choose one of {list(STRATEGIES)}")
    if len(options.luts) != len(options.budgets_ms) or not options.luts:
        raise ValueError(f"{len(options.luts)} LUT(s) but {len(options.budgets_ms)} budget group(s)")
    constrained = [b for b in options.budgets_ms if b]
    if not constrained:
        raise ValueError("no latency budget given (--latency-ms)")
    if len({len(b) for b in constrained}) > 1:
        raise ValueError("every constrained LUT needs the same number of budgets (the i-th of each is one search)")
    if options.strategy == "gradient" and len(constrained) != 1:
        raise ValueError("gradient search takes budgets on exactly one LUT")
    if options.penalty not in PENALTIES:
        raise ValueError(f"penalty={options.penalty!r}; choose one of {list(PENALTIES)}")


def check_precision(latency: dict[str, LatencyPredictor], paths: dict[str, str], precision: str) -> None:
    """Every LUT prices ``precision``: an int8 deployment searched with fp32 costs (or the reverse) is refused."""
    for name, predictor in latency.items():
        priced = predictor.table.precision
        if priced != precision:
            raise ValueError(f"{paths[name]} prices {priced} ops but the search is for {precision} "
                             f"(--precision {precision} needs LUTs profiled with `hwnas profile --precision {precision}`)")


def run_search(options: SearchOptions) -> dict[str, Any]:
    """The whole job; returns what ``results.json`` holds."""
    _check(options)
    started = time.perf_counter()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with process_group(options.device) as launch:
        supernet = load_supernet(options.supernet, launch.device).eval()
        space = supernet.space
        data, missing = _eval_data(options)
        names = [device_name(lut) for lut in options.luts]
        if len(set(names)) != len(names):
            raise ValueError(f"two LUTs share the device name in {names}; give them distinct folders or file names")
        latency = {name: LatencyPredictor(space, LatencyTable.load(lut)) for name, lut in zip(names, options.luts)}
        check_precision(latency, dict(zip(names, options.luts)), options.precision)
        budgets = {name: list(b) for name, b in zip(names, options.budgets_ms) if b}
        predictor, measured = _accuracy_predictor(options, out, supernet, data, missing, launch.rank,
                                                  launch.world_size)
        if not launch.is_main:
            return {}
        if options.strategy == "evolution":
            result = evolution_search(space, predictor, latency, budgets, options.max_macs, options.max_params,
                                      options.population, options.generations, seed=options.seed,
                                      progress=options.progress, measured=measured)
            found = [c.to_dict() for c in result.best]
            fronts = {device: [c.to_dict() for c in front] for device, front in result.pareto.items()}
            search_seconds = result.seconds
        else:
            (name, values), = budgets.items()
            if data is None:
                raise ValueError(f"gradient search trains on images, and there are none: {missing}")
            found, fronts, search_seconds = [], {}, 0.0
            for budget in values:
                found_one = gradient_search(supernet, latency[name], budget, data.calibration, data.preprocessing,
                                            steps=options.steps, penalty=options.penalty, weight=options.weight,
                                            seed=options.seed, progress=options.progress)
                search_seconds += found_one.seconds
                codes = space.encode(found_one.arch)
                found.append({"arch": found_one.arch.to_dict(), "accuracy": float(predictor.predict(codes)[0]),
                              "latency_ms": {n: float(p.predict(codes)[0]) for n, p in latency.items()},
                              "macs": space.macs(found_one.arch), "params": space.params(found_one.arch),
                              "budgets_ms": {name: budget}, "expected_latency_ms": found_one.expected_latency_ms})
        check = options.check_holdout and data is not None and data.held_out
        if options.check_holdout and data is None:
            print(f"[search] holdout accuracy not measured: {missing}")
        elif options.check_holdout and not data.held_out:
            print(f"[search] the validation images here ({data.validation.name}) were part of {options.supernet}'s "
                  "training set: holdout accuracy not measured (give --data-dir to the full dataset to measure it)")
        for entry in found if check else []:  # the predictor's word checked against a measurement
            entry["holdout_accuracy"] = subnet_accuracy(supernet, Arch.from_dict(entry["arch"]), data.calibration,
                                                        data.validation, data.preprocessing)
        if options.measure:
            _measure_latency(found, latency, dict(zip(names, map(str, options.luts))), out, options.seed,
                             options.progress)
        results = {
            "strategy": options.strategy, "space": space.name, "supernet": str(options.supernet),
            "luts": dict(zip(names, map(str, options.luts))), "budgets_ms": budgets, "found": found, "pareto": fronts,
            "accuracy_predictor": predictor.report,
            "measured_accuracies": None if measured is None else {"source": measured.source, "archs": len(measured)},
            "search_seconds": round(search_seconds, 3),
            "wall_s": round(time.perf_counter() - started, 1), "options": asdict(options),
        }
        write_json_atomic(out / "results.json", results)
        plot_pareto(results, out / "pareto.png")
        return results


def _measure_latency(found: list[dict[str, Any]], latency: dict[str, LatencyPredictor], lut_paths: dict[str, str],
                     out: Path, seed: int, progress: bool) -> None:
    """End-to-end latency of each found arch on the runtime and threads each LUT was profiled with, on this
    machine (the profiler's protocol, journaled); devices profiled elsewhere are skipped with a note.

    The LUT's validation subnets nearest in predicted latency are timed in the same rounds: their ratio to
    validation time is the machine's drift (``machine_speed_vs_validation``; ``hwnas.latency.drift``)."""
    from ..latency.drift import speed_factor, validation_anchors, validation_subnets
    from ..latency.protocol import Protocol
    from ..latency.targets import get_target, target_names
    from ..latency.validate import measure_subnets

    archs = [Arch.from_dict(entry["arch"]) for entry in found]
    for name, predictor in latency.items():
        meta = predictor.table.metadata
        target_name, threads = meta.get("target"), (meta.get("runtime") or {}).get("threads") or 1
        if target_name not in target_names():
            print(f"[search] {name}: profiled on {target_name or 'another machine'}; not re-measured here")
            continue
        target = get_target(target_name, int(threads), precision=predictor.table.precision)
        # per found arch, the validation subnets nearest to its predicted latency (drift differs with size)
        subnets = validation_subnets(predictor.space, lut_paths[name])
        anchor_sets = [validation_anchors(predictor.space, subnets, entry["latency_ms"][name]) for entry in found]
        anchors = {index: (arch, then) for group in anchor_sets for index, arch, then in group}
        order = sorted(anchors)
        timed = archs + [anchors[i][0] for i in order]
        journal = out / f"measured-{name}.jsonl"
        _drop_stale_journal(journal, timed)
        measured = measure_subnets(predictor.space, target, timed, journal, Protocol(), passes=8, seed=seed,
                                   progress=progress)
        now = dict(zip(order, measured[len(archs):]))
        for entry, value, group in zip(found, measured, anchor_sets):
            entry.setdefault("measured_latency_ms", {})[name] = float(value)
            speed = speed_factor([now[i] for i, _, _ in group], [then for _, _, then in group])
            if speed is not None:
                entry.setdefault("machine_speed_vs_validation", {})[name] = speed


def _drop_stale_journal(path: Path, archs: list[Arch]) -> None:
    """A measurement journal an earlier search left in this folder times other archs: it goes, as that search's
    results.json is overwritten (resuming is only for the same archs; anything else would be refused)."""
    if not path.exists():
        return
    try:
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
    except ValueError:
        return  # the journal itself names the corruption
    if header.get("archs") != json.loads(json.dumps([a.to_dict() for a in archs])):
        print(f"[search] {path} measured the archs of an earlier search here; starting it over", flush=True)
        path.unlink()


def _eval_data(options: SearchOptions) -> tuple[EvalData | None, str]:
    """The supernet's evaluation data, or (None, why) when it records none this machine has: a search with a
    given predictor needs no images (an imported OFA supernet: its predictor came with it), so the missing
    data only stops what needs it, each with this reason."""
    try:
        data, _ = checkpoint_eval_data(supernet_extra(options.supernet), options.data_dir)
    except ValueError as error:
        if options.predictor is None:
            raise
        return None, f"no evaluation data ({error}); give --data-dir"
    return data, ""


def _accuracy_predictor(options: SearchOptions, out: Path, supernet: OFAMobileNetV3, data: EvalData | None,
                        missing: str, rank: int, world_size: int) -> tuple[AccuracyPredictor, MeasuredAccuracies | None]:
    """The predictor given, the one in ``out``, or a new one fitted on a freshly measured dataset; with the
    measured accuracies (None with ``use_measured=False``): the file given, the predictor's dataset beside it, or
    the dataset measured now."""
    space = supernet.space
    saved = Path(options.predictor) if options.predictor else out / "accuracy_predictor.safetensors"
    measured_path = options.measured_accuracies or beside_predictor(saved)
    given = MeasuredAccuracies.load(measured_path, space) if measured_path and options.use_measured else None
    if saved.exists():
        return AccuracyPredictor.load(saved, space), given
    if options.predictor:
        raise ValueError(f"{saved}: no such accuracy predictor")
    if data is None:  # _eval_data only returns none with a predictor given, found above
        raise ValueError(f"fitting an accuracy predictor measures subnets on images, and there are none: {missing}")
    if not data.held_out:
        raise ValueError(f"{options.supernet}: its validation images here ({data.validation.name}) were part of its "
                         "training set, so a predictor fitted on them would rank by training accuracy; give --predictor "
                         "(a zoo model ships one) or --data-dir to the full dataset it was trained on")
    dataset = build_accuracy_dataset(supernet, data.calibration, data.validation, data.preprocessing, options.n_archs,
                                     out / "accuracy_dataset", seed=options.seed, rank=rank, world_size=world_size,
                                     progress=options.progress and rank == 0, sampling=options.sampling)
    predictor = AccuracyPredictor(space)
    torch.manual_seed(options.seed)
    report = predictor.fit(dataset.codes, dataset.accuracies, seed=options.seed)
    report["dataset_seconds"] = round(dataset.seconds, 1)
    report["accuracy_range"] = [float(np.min(dataset.accuracies)), float(np.max(dataset.accuracies))]
    measured = MeasuredAccuracies(dataset.codes, dataset.accuracies, str(saved.parent / "accuracy_dataset.jsonl"))
    if rank == 0:
        predictor.save(saved)
        measured.save(measured.source, space)  # beside the predictor, as a zoo entry ships them
    return predictor, (given or measured) if options.use_measured else None


def results_table(results: dict[str, Any]) -> str:
    """One row per found arch: budget, predicted (and measured) latency per device, MACs, accuracy (predicted, or
    measured when the arch is among the measured accuracies), holdout accuracy."""
    devices = list(results["luts"])
    header = (f"{'budget':<16}" + "".join(f"{d[:24]:>26}" for d in devices)
              + f"{'MACs':>9}{'accuracy':>10}{'from':>10}{'holdout':>9}")
    lines = [header]
    for entry in results["found"]:
        budget = ", ".join(f"{v:g}" for v in entry["budgets_ms"].values()) + " ms"
        cells = []
        for device in devices:
            measured = (entry.get("measured_latency_ms") or {}).get(device)
            text = f"{entry['latency_ms'][device]:.3f}" + (f" (meas {measured:.3f})" if measured is not None else "")
            cells.append(f"{text + ' ms':>26}")
        holdout = entry.get("holdout_accuracy")
        lines.append(f"{budget:<16}" + "".join(cells) + f"{entry['macs'] / 1e6:>8.1f}M{entry['accuracy']:>10.2%}"
                     + f"{entry.get('accuracy_source', 'predicted'):>10}"
                     + (f"{holdout:>9.2%}" if holdout is not None else f"{'-':>9}"))
    return "\n".join(lines)
