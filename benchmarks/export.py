"""Deploy from a trained `tiny-mbv3` supernet: every exported file checked against PyTorch and timed here.

Heavy (it needs the supernet ``train_cifar.py`` trains, ~25 min), so ``make bench`` reuses the section this
script last wrote unless ``HWNAS_BENCH_HEAVY=1``. Run it directly:

    python benchmarks/export.py [--supernet runs/bench/train-quick/supernet.safetensors] [--n-random 5]

For the smallest, middle and largest subnet and ``--n-random`` random ones: ONNX and TFLite, fp32 and int8
(calibrated on 200 training images), each with its max |Δlogit| against PyTorch (100 test images), top-1
agreement (500), accuracy on the whole CIFAR-10 test set, and its latency measured here (batch 1, the LUT's
runtime and threads) next to the calibrated LUT's prediction (``device_profiles/{ort-cpu,tflite}-1t-tiny-mbv3``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from run_all import measured_on, save_section  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
HEAVY = True  # make bench reuses sections/export.md unless HWNAS_BENCH_HEAVY=1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(ROOT / "runs" / "bench" / "train-quick" / "supernet.safetensors"))
    parser.add_argument("--n-random", type=int, default=5)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    args = parser.parse_args()
    if not Path(args.supernet).is_file():
        print(f"## Deploy\n\nSkipped: {args.supernet} not found (run train_cifar.py first).\n")
        return 0
    sys.path.insert(0, str(ROOT))
    from hwnas.eval import reference_subnets
    from hwnas.export import ExportOptions, export
    from hwnas.nn import load_supernet

    space = load_supernet(args.supernet).space
    archs = dict(reference_subnets(space))
    rng = np.random.default_rng(0)
    for i in range(args.n_random):
        archs[f"random-{i}"] = space.sample(rng)
    load = os.getloadavg()[0]
    rows, errors, ratios, ratios_now, drift = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-export-") as tmp:
        for name, arch in archs.items():
            runs = [("", export(ExportOptions(supernet=args.supernet, out=str(Path(tmp) / name), arch=arch.to_dict(),
                                              int8=True, data_dir=args.data_dir, progress=False)))]
            runs.append((" (static)", export(ExportOptions(  # full-integer TFLite: slow here, so 1,000 test images
                supernet=args.supernet, out=str(Path(tmp) / f"{name}-static"), arch=arch.to_dict(), formats=["tflite"],
                int8=True, tflite_int8="static", test_images=1000, data_dir=args.data_dir, progress=False))))
            now = file_and_twin(space, arch, Path(tmp) / name)
            for suffix, report in runs:
                for key, entry in report["formats"].items():
                    if suffix and key != "tflite_int8":
                        continue
                    predicted, measured = entry.get("predicted_latency_ms"), entry.get("measured_latency_ms")
                    ratio = "-" if not predicted else f"{measured / predicted - 1:+.1%}"
                    as_profiled, speed, ratio_now = "-", "-", "-"
                    if entry.get("machine_speed_vs_validation"):
                        speed = f"{entry['machine_speed_vs_validation']['factor']:.3f}"
                        ratio_now = f"{entry['measured_vs_predicted_now']:+.1%}"
                        ratios_now.append(abs(entry["measured_vs_predicted_now"]))
                    if predicted:
                        ratios.append(abs(measured / predicted - 1))
                        file_now, reference = now[key]
                        as_profiled = f"{reference:.3f} ({file_now / reference - 1:+.1%})"
                        drift.append(reference / predicted - 1)
                    if not entry["passed"]:
                        errors.append(f"{name} {key}{suffix}")
                    rows.append(
                        f"| {name} (r{arch.r}, {space.macs(arch) / 1e6:.1f}M MACs) | {key}{suffix} | {entry['precision']} "
                        f"| {entry['size_bytes'] / 1e6:.2f} | {entry['max_abs_diff']:.1e} | {entry['top1_agreement']:.3f} "
                        f"| {entry['test_acc']:.4f} on {entry['test_images']:,} (PyTorch {report['pytorch_test_acc']:.4f} on "
                        f"{report.get('pytorch_test_images') or entry['test_images']:,}) "
                        f"| {'-' if not predicted else f'{predicted:.3f}'} | {measured:.3f} | {ratio} | {speed} | {ratio_now} "
                        f"| {as_profiled} "
                        f"| {'pass' if entry['passed'] else 'FAIL'} |")
    lines = [
        "## Deploy (`benchmarks/export.py`)\n",
        f"Supernet `{Path(args.supernet).name}` from `{Path(args.supernet).parent.name}` (`tiny-mbv3`, CIFAR-10); "
        f"load average {load:.2f} at start; {measured_on()} Accuracy on the 10,000 CIFAR-10 test images; latency batch 1, "
        "1 thread (as the LUTs were profiled), lowest of 8 interleaved protocol runs per file "
        "(the profiler's statistic). int8 rows have no LUT prediction "
        "(the LUTs price fp32 ops); `int8-dynamic` TFLite (the default) keeps float activations, `(static)` rows "
        "are full-integer TFLite. litert-torch cross-check: "
        f"{'installed' if _has('litert_torch') else 'not installed here (optional extra), its test skips'}.\n",
        "| subnet | file | precision | MB | max abs Δ logit | top-1 agreement (500) | test accuracy (images) | LUT ms "
        "| measured ms | measured vs LUT | machine speed now / at validation (4 anchors) | measured vs LUT × speed "
        "| same arch as profiled (file vs it, timed in the same rounds) | check |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    if ratios:
        lines.append("\n" + summary(ratios, ratios_now, drift, errors))
    text = "\n".join(lines)
    save_section("export", text)
    return 0


def summary(ratios: list[float], ratios_now: list[float], drift: list[float], errors: list[str]) -> str:
    """The paragraph under the table; its first sentence is the README's headline (|errors| as fractions)."""
    def stats(values: list[float]) -> str:
        return (f"{sum(v <= 0.10 for v in values)}/{len(values)} (mean |error| {np.mean(values):.1%}, worst "
                f"{np.max(values):.1%})")

    text = f"Goal (fp32 files measured within 10% of the calibrated LUT's prediction): {stats(ratios)} against the LUT as stored"
    if ratios_now:
        text += (f"; {stats(ratios_now)} against the LUT scaled by the machine's speed now (the 4 validation subnets "
                 f"nearest in latency, re-timed in the same rounds as the files; `hwnas export` reports it as "
                 f"`predicted_now_ms`)")
    return text + (
        f". The same archs built as the profiler builds them (random weights, batch 1), timed right after each "
        f"export in the same interleaved rounds as a second timing of the exported file, were {np.mean(drift):+.1%} "
        f"off the LUT on average (mean |error| {np.mean(np.abs(drift)):.1%}, worst {np.max(np.abs(drift)):.1%}): "
        f"the file-vs-it column is what the export itself changes, the rest of a file's error is the LUT's and this "
        f"machine's drift since validation. Checks failed: {', '.join(errors) or 'none'}.\n")


def file_and_twin(space, arch, bundle: Path) -> dict[str, tuple[float, float]]:
    """Per fp32 format: the exported file and the same arch built as the profiler's validation builds it
    (random weights), timed in the same interleaved rounds, so that machine drift between timings cancels
    out of their ratio."""
    from hwnas.export.files import FILE_NAMES, RUNTIMES
    from hwnas.export.verify import TimedFile, measure_files
    from hwnas.latency.targets import get_target
    from hwnas.latency.targets.base import static_subnet

    twin_module = static_subnet(space.signatures(arch), seed=0)
    items = []
    for key, target_name in RUNTIMES.items():
        twin = get_target(target_name, 1).build_subnet(twin_module, arch.r).payload
        items += [TimedFile(f"{key}/file", (bundle / FILE_NAMES[key]).read_bytes(), key, arch.r, 1),
                  TimedFile(f"{key}/twin", twin, key, arch.r, 1)]
    timed = measure_files(items)
    return {key: (timed[f"{key}/file"]["measured_latency_ms"], timed[f"{key}/twin"]["measured_latency_ms"])
            for key in RUNTIMES}


def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


if __name__ == "__main__":
    raise SystemExit(main())
