"""The demo's stages, each reusing what a previous run finished so that an interrupted demo picks up where it
stopped: this CPU's LUTs, the supernet (a zoo model, a file, or trained now), one search per runtime, and the
export + verification + measurement of every chosen subnet."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import read_json, write_bytes_atomic
from ..space import get_space

SPACE = "tiny-mbv3"
RUNTIMES = ("ort-cpu", "tflite")                # a search, and a Pareto front, per runtime
FORMAT_OF = {"ort-cpu": "onnx", "tflite": "tflite"}
DEMO_TFLITE_INT8 = "static"  # full integer: one XNNPACK partition, about fp32's speed, priced by the int8 LUT;
                             # dynamic range agrees better with fp32 but runs ~3× slower (benchmarks/int8.py)
REPO_PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
DEFAULT_SUPERNET = "tiny-mbv3-cifar10"


@dataclass(frozen=True)
class DemoSizes:
    """How much work each stage does: the real demo, or ``SMOKE`` (every code path in about a minute)."""

    budget_fractions: tuple[float, ...] = (0.03, 0.45, 1.0)  # of the way from the smallest to the largest
    # subnet's predicted latency on each runtime; the first sits just above the smallest subnet
    n_archs: int = 120                       # accuracy dataset, only for a supernet without a predictor
    generations: int = 500
    calib_images: int = 100                  # int8 calibration
    test_images: int | None = None           # None: the whole shipped test set
    int8_test_images: int | None = None      # of those, for the int8 files (None: all)
    profile: bool = True                     # profile this CPU when no cached LUT of it exists
    int8: bool = True
    max_steps_per_phase: int | None = None   # --train: None is the whole quick schedule
    workers: int = 2                         # processes building and verifying exports at once (timing is alone)


SMOKE = DemoSizes(budget_fractions=(0.3, 1.0), n_archs=12, generations=30, calib_images=16, test_images=100,
                  profile=False, int8=False, max_steps_per_phase=2)


@dataclass(frozen=True)
class Supernet:
    """What the search starts from: the weights, the accuracy predictor that comes with them (None: fit one on
    the holdout), and a line on where they come from for the report."""

    path: str
    predictor: str | None
    origin: str
    card: dict[str, Any] | None = None       # a zoo model's zoo.json
    training: dict[str, Any] | None = None   # a run trained by this demo: its results.json


def _same_cpu(lut: Path) -> bool:
    from ..latency import LatencyTable
    from ..latency.targets.base import cpu_model

    table = LatencyTable.load(lut)
    return bool(table.calibration) and table.metadata.get("device") == cpu_model()


def profile_stage(out: Path, target_name: str, space_name: str = SPACE, measure: bool = True,
                  any_cpu: bool = False) -> Path | None:
    """This CPU's calibrated LUT for ``target_name``: the demo's own from a previous run, the shipped one when it
    was measured on this very CPU model (or on any, with ``any_cpu``), else (``measure``) profiled and validated
    now. None when there is none."""
    from ..latency import LatencyPredictor, LatencyTable
    from ..latency.profiler import profile
    from ..latency.targets import get_target
    from ..latency.validate import validate

    space = get_space(space_name)
    folder = out / f"profile-{target_name}-{space_name}"
    lut = folder / "lut.json"
    shipped = REPO_PROFILES / f"{target_name}-1t-{space_name}" / "lut.json"
    if lut.exists() and LatencyTable.load(lut).calibration:
        print(f"[profile] reusing {lut}")
    elif shipped.exists() and _same_cpu(shipped):
        print(f"[profile] reusing the shipped {shipped.parent.name}: measured on this CPU model")
        lut = shipped
    elif shipped.exists() and any_cpu:
        print(f"[profile] using the shipped {shipped.parent.name} (another CPU model: predictions are approximate)")
        lut = shipped
    elif not measure:
        print(f"[profile] {target_name}: no profile of this CPU cached; not measured in this demo")
        return None
    else:
        target = get_target(target_name, threads=1)
        table = profile(space, target, folder)
        print(f"[profile] {len(table)} ops of {space_name} timed on {target_name} (1 thread) in "
              f"{table.metadata['profile_seconds']:.0f} s")
        validate(space, target, folder, n=40)
    table = LatencyTable.load(lut)
    report = table.calibration["validation"]
    raw, calibrated = report["holdout_uncalibrated"], report["holdout_calibrated"]
    print(f"[profile] {target_name}: held-out subnets within ±5%: {raw['within_5pct']:.0%} raw op sum -> "
          f"{calibrated['within_5pct']:.0%} calibrated (RMSPE {raw['rmspe_pct']:.1f}% -> {calibrated['rmspe_pct']:.1f}%)")
    low, high = LatencyPredictor(space, table).predict([space.min_arch(), space.max_arch()])
    print(f"[profile] {target_name}: predicted latency smallest subnet {low:.3f} ms, largest {high:.3f} ms")
    return lut


def int8_lut_stage(target_name: str, space_name: str = SPACE, any_cpu: bool = False) -> Path | None:
    """The shipped int8 LUT of ``target_name`` when it was measured on this CPU model (or on any, with ``any_cpu``):
    it prices the demo's int8 files. None otherwise: their latency is then measured but not predicted (the demo
    does not profile int8, which takes 3–5 min per runtime: ``hwnas profile --precision int8``)."""
    shipped = REPO_PROFILES / f"{target_name}-1t-{space_name}-int8" / "lut.json"
    if not shipped.exists() or not (any_cpu or _same_cpu(shipped)):
        print(f"[profile] {target_name} int8: no LUT of this CPU shipped; int8 files are timed, not predicted")
        return None
    print(f"[profile] {target_name} int8: using the shipped {shipped.parent.name} to price the int8 files")
    return shipped


def supernet_stage(out: Path, supernet: str | None, train: bool, sizes: DemoSizes) -> Supernet:
    """The zoo model (default) or file named by ``supernet``; with ``train``, a supernet trained now."""
    from ..zoo import resolve_zoo

    if train:
        results = train_stage(out, sizes)
        return Supernet(results["supernet"], None, "trained by this demo (quick schedule, shipped 5,000 images)",
                        training=results)
    name = supernet or DEFAULT_SUPERNET
    model = resolve_zoo(name)
    if model is None:
        return Supernet(name, None, f"`{name}`")
    rows = {row["name"]: row["test_acc"] for row in model.metadata["accuracy"]["test"]}
    print(f"[zoo] {model.name}: {model.metadata.get('summary', '')}".rstrip())
    print(f"[zoo] on the 10,000 CIFAR-10 test images: smallest {rows['smallest']:.1%}, middle {rows['middle']:.1%}, "
          f"largest {rows['largest']:.1%}")
    return Supernet(str(model.supernet_path), str(model.predictor_path), f"zoo model `{model.name}`",
                    card=model.metadata)


def train_stage(out: Path, sizes: DemoSizes, space_name: str = SPACE) -> dict[str, Any]:
    """Train a supernet with the quick schedule on the shipped CIFAR-10 subset; a finished run is reused,
    an interrupted one resumed."""
    from ..train import TrainOptions, train_supernet
    from ..train.run import results_table

    folder = out / f"train-{space_name}-quick"
    if (folder / "results.json").exists():
        print(f"[train] reusing {folder / 'results.json'}")
        results = read_json(folder / "results.json")
    else:
        resume = (folder / "checkpoint" / "state.json").exists()
        print(f"[train] progressive shrinking of {space_name} on the shipped CIFAR-10 subset (quick schedule"
              f"{', resuming' if resume else ''})")
        results = train_supernet(TrainOptions(out=str(folder), space=space_name, schedule="quick", resume=resume,
                                              max_steps_per_phase=sizes.max_steps_per_phase))
    print(results_table(results))
    print(f"[train] supernet {results['supernet']}; curves {folder / 'training.png'}; {results['wall_s']:.0f} s")
    return results


def latency_range(lut: Path, space_name: str = SPACE) -> tuple[float, float]:
    """Predicted latency (ms) of the space's smallest and largest subnet on ``lut``."""
    from ..latency import LatencyPredictor, LatencyTable

    space = get_space(space_name)
    low, high = LatencyPredictor(space, LatencyTable.load(lut)).predict([space.min_arch(), space.max_arch()])
    return float(low), float(high)


def budgets_for(lut: Path, fractions: tuple[float, ...], space_name: str = SPACE) -> list[float]:
    """Budgets spread over what this device can do, from the smallest to the largest subnet's latency, rounded up
    to the microsecond (rounded to nearest, the last could fall below the largest subnet it stands for)."""
    low, high = latency_range(lut, space_name)
    return [math.ceil(1000 * (low + f * (high - low)) - 1e-6) / 1000 for f in fractions]


def search_stage(out: Path, runtime: str, supernet: Supernet, luts: dict[str, Path], budgets: list[float],
                 sizes: DemoSizes) -> dict[str, Any]:
    """Evolution under ``budgets`` on ``runtime``'s LUT (the other runtimes priced alongside), with the
    supernet's own accuracy predictor when it has one. A finished search with the same inputs is reused."""
    from ..latency.table import device_name
    from ..search.run import SearchOptions, results_table, run_search

    folder = out / f"search-{runtime}"
    saved = folder / "results.json"
    order = [runtime] + [r for r in luts if r != runtime]
    if saved.exists():
        results = read_json(saved)
        if (results.get("budgets_ms", {}).get(device_name(luts[runtime])) == budgets
                and results.get("supernet") == supernet.path):
            print(f"[search] {runtime}: reusing {saved}")
            print(results_table(results))
            return results
    predictor = supernet.predictor or (str(out / "accuracy_predictor.safetensors")
                                       if (out / "accuracy_predictor.safetensors").exists() else None)
    print(f"[search] {runtime}: evolution for budgets {budgets} ms"
          + ("" if predictor else "; first an accuracy predictor fitted on the holdout"))
    results = run_search(SearchOptions(supernet=supernet.path, luts=[str(luts[r]) for r in order],
                                       budgets_ms=[budgets] + [[] for _ in order[1:]], out=str(folder),
                                       predictor=predictor, n_archs=sizes.n_archs, generations=sizes.generations,
                                       check_holdout=False, progress=False))  # export counts the test images
    if predictor is None:  # fitted here: the other runtime's search reuses it, and the accuracies it measured
        for name in ("accuracy_dataset.jsonl", "accuracy_predictor.safetensors"):  # the predictor last: it marks both
            write_bytes_atomic(out / name, (folder / name).read_bytes())
    print(results_table(results))
    return results


def arch_key(arch: dict[str, Any]) -> str:
    return json.dumps(arch, sort_keys=True)


def _export_unmeasured(options: Any) -> str:
    """One export without timing, in a worker process of its own (one thread: the workers share the cores)."""
    import torch

    from ..export import export

    torch.set_num_threads(1)
    export(options)
    return options.out


def export_stage(out: Path, supernet: Supernet, searches: dict[str, dict[str, Any]], luts: dict[str, Path],
                 sizes: DemoSizes, seconds: dict[str, float] | None = None,
                 int8_luts: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """Every chosen subnet (once, however many budgets chose it) to ONNX and TFLite, fp32 and int8, verified
    against PyTorch on the shipped test images, then timed on both runtimes; finished bundles are reused.
    int8 TFLite is full integer (``DEMO_TFLITE_INT8``), the form the int8 LUT prices; ``int8_luts`` price the
    int8 files next to ``luts`` pricing the fp32 ones.

    Building and verifying (BN recalibration, quantization, every test image through every file) is most of
    the demo's time and does not care what else runs: it goes to ``sizes.workers`` processes at once. Timing
    does care, so every file of every bundle is timed afterwards, alone, in one interleaved session
    (``hwnas.export.timing``). Returns the export report per arch key; adds each part's wall time to ``seconds``."""
    import time

    from ..export import ExportOptions, report_table
    from ..export.timing import measure_exports

    seconds = {} if seconds is None else seconds
    began = time.perf_counter()

    folders: dict[str, Path] = {}
    for runtime, results in searches.items():
        for found in results["found"]:
            key = arch_key(found["arch"])
            if key not in folders:
                budget = next(iter(found["budgets_ms"].values()))
                folders[key] = out / "export" / f"{runtime}-{budget:g}ms"
    reports = {key: _finished(folder, key) for key, folder in folders.items()}
    space = get_space(SPACE)
    macs = {key: space.macs(space.arch(json.loads(key))) for key in folders}
    todo = [ExportOptions(supernet=supernet.path, out=str(folders[key]), arch=json.loads(key), int8=sizes.int8,
                          calib_images=sizes.calib_images, test_images=sizes.test_images,
                          int8_test_images=sizes.int8_test_images, tflite_int8=DEMO_TFLITE_INT8,
                          luts=[str(p) for p in [*luts.values(), *(int8_luts or {}).values()]], measure=False,
                          threads=1 if sizes.workers > 1 else None, progress=False)
            for key in sorted(folders, key=macs.__getitem__, reverse=True)  # the longest first: the workers
            if reports[key] is None]                                        # finish together
    if todo:
        print(f"[export] {len(todo)} subnets: building and verifying {min(sizes.workers, len(todo))} at a time")
        _run_exports(todo, sizes.workers)
    seconds["export: build + verify"] = time.perf_counter() - began
    began = time.perf_counter()
    unmeasured = [key for key in folders if not (reports[key] or {}).get("measured")]
    if unmeasured:
        print(f"[export] timing {len(unmeasured)} bundles' files on this machine, alone, in one interleaved session")
        for key, report in zip(unmeasured, measure_exports([folders[k] for k in unmeasured])):
            reports[key] = report
    seconds["export: timing"] = time.perf_counter() - began
    for key, folder in folders.items():
        print(f"[export] {folder}")
        print(report_table(reports[key]))
        reports[key] = {**reports[key], "folder": str(folder.relative_to(out))}
    return reports  # type: ignore[return-value]


def _finished(folder: Path, key: str) -> dict[str, Any] | None:
    """The report of an earlier export of this arch into ``folder`` (timed or not), else None."""
    path = folder / "report.json"
    report = read_json(path) if path.exists() else None
    if (report is None or arch_key(report["arch"]) != key or not all("timing" in f for f in report["formats"].values())
            or report.get("options", {}).get("tflite_int8") != DEMO_TFLITE_INT8):
        return None
    print(f"[export] reusing {folder}" + ("" if report.get("measured") else " (not yet timed)"))
    return report


def _run_exports(todo: list[Any], workers: int) -> None:
    """``export`` each of ``todo``, in ``workers`` fresh processes (spawned: no state forked from this one), no
    more than this machine has cores."""
    from ..export.run import usable_cores

    workers = min(workers, usable_cores())
    if workers <= 1 or len(todo) == 1:
        for options in todo:
            _export_unmeasured(options)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for folder in pool.map(_export_unmeasured, todo):
            print(f"[export] built and verified {folder}", flush=True)


def profile_summary(lut: Path) -> str:
    """One line on a LUT: where it comes from, its device, and its held-out validation."""
    from ..latency import LatencyTable

    table = LatencyTable.load(lut)
    meta = table.metadata
    report = (table.calibration or {}).get("validation", {})
    raw, calibrated = report.get("holdout_uncalibrated", {}), report.get("holdout_calibrated", {})
    return (f"`{lut.parent.name}` ({meta.get('device')}, {meta.get('target')}, {len(table)} ops, profiled "
            f"{str(meta.get('created_at', '?'))[:10]}): held-out subnets within ±5% of the prediction "
            f"{raw.get('within_5pct', float('nan')):.0%} raw op sum → {calibrated.get('within_5pct', float('nan')):.0%} "
            f"calibrated (RMSPE {raw.get('rmspe_pct', float('nan')):.1f}% → {calibrated.get('rmspe_pct', float('nan')):.1f}%)")
