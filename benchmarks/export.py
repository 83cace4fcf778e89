"""Deploy from a trained `tiny-mbv3` supernet: every exported file checked against PyTorch and timed here.

Heavy (it needs the supernet ``train_cifar.py`` trains, ~25 min), so ``make bench`` reuses the section this
script last wrote unless ``HWNAS_BENCH_HEAVY=1``. Run it directly:

    python benchmarks/export.py [--supernet runs/bench/train-quick/supernet.safetensors] [--n-random 2]

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

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = Path(__file__).resolve().parent / "sections"
HEAVY = True  # make bench reuses sections/export.md unless HWNAS_BENCH_HEAVY=1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(ROOT / "runs" / "bench" / "train-quick" / "supernet.safetensors"))
    parser.add_argument("--n-random", type=int, default=2)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    args = parser.parse_args()
    if not Path(args.supernet).is_file():
        print(f"## Deploy\n\nSkipped: {args.supernet} not found (run train_cifar.py first).\n")
        return 0
    sys.path.insert(0, str(ROOT))
    from hwnas.export import ExportOptions, export
    from hwnas.nn import load_supernet
    from hwnas.train.evaluate import reference_subnets

    space = load_supernet(args.supernet).space
    archs = dict(reference_subnets(space))
    rng = np.random.default_rng(0)
    for i in range(args.n_random):
        archs[f"random-{i}"] = space.sample(rng)
    load = os.getloadavg()[0]
    rows, errors, ratios, drift = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-export-") as tmp:
        for name, arch in archs.items():
            runs = [("", export(ExportOptions(supernet=args.supernet, out=str(Path(tmp) / name), arch=arch.to_dict(),
                                              int8=True, data_dir=args.data_dir, progress=False)))]
            runs.append((" (static)", export(ExportOptions(  # full-integer TFLite: slow here, so 1,000 test images
                supernet=args.supernet, out=str(Path(tmp) / f"{name}-static"), arch=arch.to_dict(), formats=["tflite"],
                int8=True, tflite_int8="static", test_images=1000, data_dir=args.data_dir, progress=False))))
            now = profiled_now(space, arch)
            for suffix, report in runs:
                for key, entry in report["formats"].items():
                    if suffix and key != "tflite_int8":
                        continue
                    predicted, measured = entry.get("predicted_latency_ms"), entry.get("measured_latency_ms")
                    ratio = "-" if not predicted else f"{measured / predicted - 1:+.1%}"
                    as_profiled = "-"
                    if predicted:
                        ratios.append(abs(measured / predicted - 1))
                        reference = now[key]
                        as_profiled = f"{reference:.3f} ({measured / reference - 1:+.1%})"
                        drift.append(reference / predicted - 1)
                    if not entry["passed"]:
                        errors.append(f"{name} {key}{suffix}")
                    rows.append(
                        f"| {name} (r{arch.r}, {space.macs(arch) / 1e6:.1f}M MACs) | {key}{suffix} | {entry['precision']} "
                        f"| {entry['size_bytes'] / 1e6:.2f} | {entry['max_abs_diff']:.1e} | {entry['top1_agreement']:.3f} "
                        f"| {entry['test_acc']:.4f} (PyTorch {report['pytorch_test_acc']:.4f}, {entry['test_images']:,}) "
                        f"| {'-' if not predicted else f'{predicted:.3f}'} | {measured:.3f} | {ratio} | {as_profiled} "
                        f"| {'pass' if entry['passed'] else 'FAIL'} |")
    lines = [
        "## Deploy (`benchmarks/export.py`)\n",
        f"Supernet `{Path(args.supernet).name}` from `{Path(args.supernet).parent.name}` (`tiny-mbv3`, CIFAR-10); "
        f"load average {load:.2f} at start. Accuracy on the 10,000 CIFAR-10 test images; latency batch 1, "
        "1 thread (as the LUTs were profiled), lowest of 5 interleaved protocol runs per file. int8 rows have no LUT prediction "
        "(the LUTs price fp32 ops); `int8-dynamic` TFLite (the default) keeps float activations, `(static)` rows "
        "are full-integer TFLite. litert-torch cross-check: "
        f"{'installed' if _has('litert_torch') else 'not installed here (optional extra), its test skips'}.\n",
        "| subnet | file | precision | MB | max abs Δ logit | top-1 agreement (500) | test accuracy (images) | LUT ms "
        "| measured ms | measured vs LUT | same arch as profiled, measured now (file vs it) | check |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
        *rows,
    ]
    if ratios:
        lines.append(f"\nfp32 files, measured vs calibrated LUT: mean |error| {np.mean(ratios):.1%}, worst "
                     f"{np.max(ratios):.1%}, {sum(r <= 0.10 for r in ratios)}/{len(ratios)} within 10% (goal: within 10%). "
                     f"The same archs built as the profiler builds them (random weights, batch 1) and measured right "
                     f"after each export were {np.mean(drift):+.1%} off the LUT on average (machine drift since "
                     f"profiling), so the export itself accounts for the difference in the file-vs-it column. "
                     f"Checks failed: {', '.join(errors) or 'none'}.\n")
    text = "\n".join(lines)
    SECTIONS.mkdir(exist_ok=True)
    (SECTIONS / "export.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def profiled_now(space, arch) -> dict[str, float]:
    """Latency now of ``arch`` built exactly as the profiler's validation builds it, per fp32 format."""
    from hwnas.export.verify import measure_file
    from hwnas.latency.targets import get_target
    from hwnas.latency.targets.base import static_subnet

    result = {}
    for key, target_name in (("onnx", "ort-cpu"), ("tflite", "tflite")):
        built = get_target(target_name, 1).build_subnet(static_subnet(space.signatures(arch), seed=0), arch.r)
        result[key] = measure_file(built.payload, key, arch.r, threads=1)["measured_latency_ms"]
    return result


def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


if __name__ == "__main__":
    raise SystemExit(main())
