"""``hwnas demo``: the whole job on shipped data, offline, in minutes on a laptop CPU.

profile this CPU (cached) → train a supernet (quick schedule, shipped CIFAR-10 subset) → accuracy predictor and
evolutionary search for three latency budgets → export each subnet to ONNX and TFLite (fp32 + int8) with
verification → ``report.md`` with the results table and plots. Every stage reuses what a previous run finished,
so an interrupted demo picks up where it stopped.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json
from .space import get_space

SPACE = "tiny-mbv3"


@dataclass(frozen=True)
class DemoSizes:
    """How much work each stage does: the real demo, or ``smoke`` (every code path in about a minute)."""

    max_steps_per_phase: int | None = None   # None: the whole quick schedule
    n_archs: int = 120                       # accuracy dataset
    generations: int = 500
    calib_images: int = 200
    test_images: int | None = None           # None: the whole shipped test set
    profile: bool = True                     # profile this CPU when no cached LUT of it exists
    int8: bool = True                        # also export int8 files (their ≥ 98% agreement needs a trained net)


SMOKE = DemoSizes(max_steps_per_phase=2, n_archs=12, generations=30, calib_images=16, test_images=100, profile=False,
                  int8=False)
BUDGET_FRACTIONS = (0.25, 0.5, 0.8)  # of the way from the smallest to the largest subnet's predicted latency
REPO_PROFILES = Path(__file__).resolve().parents[1] / "device_profiles"


def _same_cpu(lut: Path) -> bool:
    from .latency import LatencyTable
    from .latency.targets.base import cpu_model

    table = LatencyTable.load(lut)
    return bool(table.calibration) and table.metadata.get("device") == cpu_model()


def profile_stage(out: Path, target_name: str = "ort-cpu", space_name: str = SPACE, measure: bool = True,
                  any_cpu: bool = False) -> Path | None:
    """This CPU's calibrated LUT for ``target_name``: the demo's own from a previous run, the shipped one when it
    was measured on this very CPU model (or on any, with ``any_cpu``), else (``measure``) profiled and validated
    now. None when there is none."""
    from .latency import LatencyPredictor, LatencyTable
    from .latency.profiler import profile
    from .latency.targets import get_target
    from .latency.validate import validate

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


def train_stage(out: Path, sizes: DemoSizes, space_name: str = SPACE) -> dict[str, Any]:
    """Train a supernet with the quick schedule on the shipped CIFAR-10 subset; a finished run is reused,
    an interrupted one resumed."""
    from .train import TrainOptions, train_supernet
    from .train.run import results_table

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


def budgets_for(lut: Path, space_name: str = SPACE) -> list[float]:
    """Three budgets spread over what this device can do: between the smallest and largest subnet's latency."""
    from .latency import LatencyPredictor, LatencyTable

    space = get_space(space_name)
    low, high = LatencyPredictor(space, LatencyTable.load(lut)).predict([space.min_arch(), space.max_arch()])
    return [round(float(low + f * (high - low)), 3) for f in BUDGET_FRACTIONS]


def search_stage(out: Path, supernet: str, luts: list[Path], budgets: list[float], sizes: DemoSizes) -> dict[str, Any]:
    """Accuracy predictor + evolution for the budgets on the first LUT; the others are reported alongside."""
    from .latency.table import device_name
    from .search.run import SearchOptions, results_table, run_search

    folder = out / "search"
    saved = folder / "results.json"
    if saved.exists():
        results = read_json(saved)
        if results.get("budgets_ms", {}).get(device_name(luts[0])) == budgets:
            print(f"[search] reusing {saved}")
            print(results_table(results))
            return results
    print(f"[search] accuracy predictor on the holdout, then evolution for budgets {budgets} ms")
    results = run_search(SearchOptions(supernet=supernet, luts=[str(p) for p in luts],
                                       budgets_ms=[budgets] + [[] for _ in luts[1:]], out=str(folder),
                                       n_archs=sizes.n_archs, generations=sizes.generations, measure=True))
    report = results["accuracy_predictor"].get("val") or {}
    if report:
        print(f"[search] accuracy predictor: held-out Spearman {report['spearman']:.3f}, Kendall {report['kendall']:.3f}")
    print(results_table(results))
    return results


def export_stage(out: Path, budgets: list[float], luts: list[Path], sizes: DemoSizes) -> list[dict[str, Any]]:
    """Each budget's subnet to ONNX and TFLite (fp32 and int8), verified and timed; finished bundles are reused."""
    from .export import ExportOptions, export, report_table

    reports = []
    for budget in budgets:
        folder = out / "export" / f"{budget:g}ms"
        if (folder / "report.json").exists():
            report = read_json(folder / "report.json")
            print(f"[export] reusing {folder}")
        else:
            print(f"[export] {budget:g} ms subnet -> {folder}")
            report = export(ExportOptions(supernet=None, out=str(folder), from_search=str(out / "search"), budget=budget,
                                          int8=sizes.int8, calib_images=sizes.calib_images, test_images=sizes.test_images,
                                          luts=[str(p) for p in luts], progress=False))
        print(report_table(report))
        reports.append(report)
    return reports


def plot_latency(reports: list[dict[str, Any]], budgets: list[float], path: Path) -> Path:
    """Predicted (calibrated LUT) vs measured latency of every exported fp32 file, with the y = x line."""
    from .plotting import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    points: list[float] = []
    for key, marker in (("onnx", "o"), ("tflite", "s")):
        pairs = [(r["formats"][key]["predicted_latency_ms"], r["formats"][key]["measured_latency_ms"])
                 for r in reports if r["formats"].get(key, {}).get("predicted_latency_ms")]
        if pairs:
            x, y = zip(*pairs)
            ax.scatter(x, y, marker=marker, label=f"{key} (fp32)")
            points += [*x, *y]
    for budget in budgets:
        ax.axvline(budget, color="0.85", lw=0.8, zorder=0)
    if points:
        lo, hi = min(points) * 0.9, max(points) * 1.1
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="measured = predicted")
        ax.plot([lo, hi], [1.1 * lo, 1.1 * hi], ":", color="0.5", lw=0.8, label="±10%")
        ax.plot([lo, hi], [0.9 * lo, 0.9 * hi], ":", color="0.5", lw=0.8)
    ax.set_xlabel("LUT prediction (ms)")
    ax.set_ylabel("measured end to end (ms)")
    ax.set_title("exported subnets on this CPU (1 thread); grey: budgets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


COLUMNS = ("budget ms", "ONNX LUT ms", "ONNX measured", "TFLite LUT ms", "TFLite measured", "int8 TFLite measured",
           "predicted acc", "holdout acc", "test acc ONNX", "test acc int8", "MACs M", "ONNX kB fp32/int8",
           "TFLite kB fp32/int8", "checks")


def result_rows(budgets: list[float], search: dict[str, Any], reports: list[dict[str, Any]]) -> list[list[str]]:
    """One row of ``COLUMNS`` per budget: the searched arch's predictions next to its exported files' measurements."""
    def value(entry: dict[str, Any] | None, field: str, spec: str) -> str:
        number = (entry or {}).get(field)
        return "-" if number is None else format(number, spec)

    def kb(entry: dict[str, Any] | None) -> str:
        return "-" if entry is None else f"{entry['size_bytes'] / 1e3:.0f}"

    rows = []
    for budget, found, report in zip(budgets, search["found"], reports):
        f = report["formats"]
        rows.append([
            f"{budget:g}", value(f.get("onnx"), "predicted_latency_ms", ".3f"),
            value(f.get("onnx"), "measured_latency_ms", ".3f"),
            value(f.get("tflite"), "predicted_latency_ms", ".3f"), value(f.get("tflite"), "measured_latency_ms", ".3f"),
            value(f.get("tflite_int8"), "measured_latency_ms", ".3f"), f"{found['accuracy']:.1%}",
            f"{found['holdout_accuracy']:.1%}", value(f.get("onnx"), "test_acc", ".1%"),
            value(f.get("tflite_int8"), "test_acc", ".1%"), f"{report['macs'] / 1e6:.1f}",
            f"{kb(f.get('onnx'))}/{kb(f.get('onnx_int8'))}", f"{kb(f.get('tflite'))}/{kb(f.get('tflite_int8'))}",
            "pass" if report["passed"] else "FAIL" if not fp32_checks_passed([report]) else "FAIL (int8)",
        ])
    return rows


def console_table(rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def profile_summary(lut: Path) -> str:
    """One line on a LUT: where it comes from, its device, and its held-out validation."""
    from .latency import LatencyTable

    table = LatencyTable.load(lut)
    meta = table.metadata
    report = (table.calibration or {}).get("validation", {})
    raw, calibrated = report.get("holdout_uncalibrated", {}), report.get("holdout_calibrated", {})
    return (f"`{lut.parent.name}` ({meta.get('device')}, {meta.get('target')}, {len(table)} ops, profiled "
            f"{str(meta.get('created_at', '?'))[:10]}): held-out subnets within ±5% of the prediction "
            f"{raw.get('within_5pct', float('nan')):.0%} raw op sum → {calibrated.get('within_5pct', float('nan')):.0%} "
            f"calibrated (RMSPE {raw.get('rmspe_pct', float('nan')):.1f}% → {calibrated.get('rmspe_pct', float('nan')):.1f}%)")


def write_report(out: Path, train: dict[str, Any], search: dict[str, Any], rows: list[list[str]],
                 seconds: float, luts: list[Path]) -> Path:
    """``report.md``: every stage's numbers, the results table and the plots (copied next to it)."""
    device = next(iter(search["budgets_ms"]))
    shutil.copyfile(out / "search" / "pareto.png", out / "pareto.png")
    shutil.copyfile(Path(train["supernet"]).parent / "training.png", out / "training.png")
    reference = "\n".join(f"  | {s['name']} | r{s['arch']['r']} | {s['macs'] / 1e6:.1f} M | {s['test_acc']:.1%} |"
                          for s in train["subnets"])
    predictor = search["accuracy_predictor"]
    held_out = predictor.get("val") or {}
    table = "\n".join(["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * (len(COLUMNS) - 1) + "---|",
                       *("| " + " | ".join(row) + " |" for row in rows)])
    text = f"""# hwnas demo report

`tiny-mbv3` on the shipped CIFAR-10 subset (5,000 train / 1,000 test images) on this machine's CPU, in
{seconds / 60:.1f} min. Budgets are latencies on `{device}` (onnxruntime, 1 thread); LUT columns are the
calibrated predictions, measured columns the exported files timed end to end here (batch 1, 1 thread).

## Results

{table}

Checks: every fp32 file's logits within 1e-4 of PyTorch's; every int8 file's top-1 agreeing with PyTorch's
on ≥ 98% of the test images ("FAIL (int8)" below that: this supernet trains for minutes on 5,000 images, and
its near-tied logits flip under int8 more often than a trained model's — the CIFAR-10 benchmark's pass).
Bundles (model files, `run.py`, `README.md`, `report.json`): `export/<budget>ms/`.

## Stages

- **Latency tables**: {"; ".join(profile_summary(p) for p in luts)}.
- **Supernet** (`train-tiny-mbv3-quick/`): progressive shrinking, {train['steps']} steps in {train['wall_s'] / 60:.1f} min.

  | subnet | resolution | MACs | test accuracy |
  |---|---|---:|---:|
{reference}

- **Accuracy predictor**: {predictor.get('n_train', '?')} + {predictor.get('n_val', '?')} subnets measured on the
  holdout; held-out Spearman {held_out.get('spearman', float('nan')):.3f}, Kendall {held_out.get('kendall', float('nan')):.3f}.
- **Search**: evolution (population 100, 500 generations) for all budgets at once in {search['search_seconds']:.2f} s.

![Pareto front](pareto.png)
![Predicted vs measured latency](latency.png)
![Training curves](training.png)
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_demo(out: Path, sizes: DemoSizes = DemoSizes()) -> int:
    """Every stage in order; prints one summary table at the end and writes ``out/report.md``.
    Exit status 1 when an fp32 file failed its check (see ``fp32_checks_passed``)."""
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    space = get_space(SPACE)
    codes = space.sample_codes(200, np.random.default_rng(0))
    macs = np.array([space.macs(a) for a in space.decode(codes)])
    print(f"[space] {space.name}: {space.num_blocks} block slots, kernels {space.ks}, expand {space.expand}, "
          f"depth {space.depth}, resolutions {space.resolutions}; {len(space.all_signatures())} distinct operators; "
          f"MACs of 200 random subnets {macs.min() / 1e6:.1f}–{macs.max() / 1e6:.1f} M")
    ort_lut = profile_stage(out, "ort-cpu", measure=sizes.profile, any_cpu=not sizes.profile)
    tflite_lut = profile_stage(out, "tflite", measure=False, any_cpu=not sizes.profile)
    luts = [p for p in (ort_lut, tflite_lut) if p is not None]
    if not luts:
        raise RuntimeError("no ort-cpu LUT for this CPU and profiling is off: run hwnas demo without --smoke")
    train = train_stage(out, sizes)
    budgets = budgets_for(luts[0])
    search = search_stage(out, train["supernet"], luts, budgets, sizes)
    reports = export_stage(out, budgets, luts, sizes)
    plot_latency(reports, budgets, out / "latency.png")
    rows = result_rows(budgets, search, reports)
    report = write_report(out, train, search, rows, time.time() - start, luts)
    print(console_table(rows))
    print(f"demo finished in {(time.time() - start) / 60:.1f} min; report {report}")
    return 0 if fp32_checks_passed(reports) else 1


def fp32_checks_passed(reports: list[dict[str, Any]]) -> bool:
    """Whether every fp32 file matched PyTorch: a failure there is a bug. int8 agreement is reported, not fatal:
    the demo's supernet is trained for minutes, and near-tied logits flip under int8 more than a real model's."""
    return all(entry.get("passed", True) for report in reports for entry in report["formats"].values()
               if entry["precision"] == "fp32")
