"""int8 deployment of the zoo supernet's subnets: the accuracy int8 keeps and the speed it gains, both runtimes.

Heavy (~15 min on 2 cores), so ``make bench`` reuses the section this script last wrote unless
``HWNAS_BENCH_HEAVY=1``. Run it directly on a quiet machine:

    python benchmarks/int8.py [--supernet tiny-mbv3-cifar10] [--data-dir ../shared/data/cifar10]

For the smallest, middle and largest subnet of the zoo's trained ``tiny-mbv3-cifar10`` supernet, a k7-heavy one
and a random one: fp32 ONNX and TFLite, ONNX int8 (QDQ, uint8 activations, per-channel int8 weights), TFLite
int8 with dynamic-range activations and full-integer TFLite, all calibrated on 256 training images. Each int8
file's top-1 agreement with PyTorch fp32 on 2,000 test images, its accuracy on all 10,000 against the fp32
file's, and the latency of every file timed in one interleaved session (batch 1, 1 thread, as the LUTs were
profiled). Goals (issue 31): agreement ≥ 98% and accuracy drop ≤ 1 point on both runtimes including full
integer; int8 ≥ 1.3× faster than fp32 for the largest subnet on both runtimes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from run_all import measured_on, save_section  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
HEAVY = True  # make bench reuses sections/int8.md unless HWNAS_BENCH_HEAVY=1
CALIBRATION_IMAGES = 256
AGREEMENT_IMAGES = 2000
GOAL_AGREEMENT, GOAL_DROP_PTS, GOAL_SPEEDUP = 0.98, 1.0, 1.3
FP32_OF = {"onnx_int8": "onnx", "tflite_int8": "tflite"}


def subnets(space):
    """(name, arch): the reference subnets, a k7-heavy one (every kernel 7, deepest, middle expand) and one random."""
    import numpy as np

    from hwnas.eval import reference_subnets
    from hwnas.space import Arch

    chosen = dict(reference_subnets(space))
    largest = space.max_arch()
    middle_e = sorted(space.expand)[len(space.expand) // 2]
    chosen["k7-heavy"] = Arch(ks=[7] * len(largest.ks), e=[middle_e] * len(largest.e), d=list(largest.d), r=largest.r)
    chosen["random"] = space.sample(np.random.default_rng(0))
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default="tiny-mbv3-cifar10")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    args = parser.parse_args()
    if not Path(args.data_dir).is_dir():
        print(f"## int8 deployment\n\nSkipped: {args.data_dir} not found (the full CIFAR-10 test set).\n")
        return 0
    sys.path.insert(0, str(ROOT))
    from hwnas.export import ExportOptions, export
    from hwnas.export.timing import measure_reports
    from hwnas.nn import load_supernet
    from hwnas.zoo.entry import resolve_supernet

    supernet = resolve_supernet(args.supernet)
    space = load_supernet(supernet).space
    load, started = os.getloadavg()[0], time.time()
    jobs, names = [], []
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-int8-") as tmp:
        for name, arch in subnets(space).items():
            common = dict(supernet=supernet, arch=arch.to_dict(), int8=True, calib_images=CALIBRATION_IMAGES,
                          agreement_images=AGREEMENT_IMAGES, data_dir=args.data_dir, measure=False, threads=1,
                          progress=False)
            for mode in ("dynamic", "static"):
                folder = Path(tmp) / f"{name}-{mode}"
                formats = ["onnx", "tflite"] if mode == "dynamic" else ["tflite"]
                report = export(ExportOptions(out=str(folder), formats=formats, tflite_int8=mode, **common))
                jobs.append((folder, report))
                names.append((name, arch, mode))
        measure_reports(jobs)
    rows, checks = [], []
    for (name, arch, mode), (_, report) in zip(names, jobs):
        formats = report["formats"]
        for key, fp32_key in FP32_OF.items():
            if key not in formats or (mode == "static" and key != "tflite_int8"):
                continue
            entry = formats[key]
            fp32 = formats.get(fp32_key) or next(r["formats"][fp32_key] for (n, _, m), (_, r) in zip(names, jobs)
                                                 if n == name and m == "dynamic")
            label = {"onnx_int8": "ONNX int8 (QDQ U8S8)", "tflite_int8": f"TFLite int8 {mode}"}[key]
            speedup = fp32["measured_latency_ms"] / entry["measured_latency_ms"]
            drop = 100 * (fp32["test_acc"] - entry["test_acc"])
            ok = entry["top1_agreement"] >= GOAL_AGREEMENT and drop <= GOAL_DROP_PTS
            checks.append((name, label, ok, speedup))
            rows.append(f"| {name} (r{arch.r}, {space.macs(arch) / 1e6:.1f}M MACs) | {label} "
                        f"| {fp32['measured_latency_ms']:.3f} | {entry['measured_latency_ms']:.3f} | {speedup:.2f}× "
                        f"| {entry['top1_agreement']:.2%} | {fp32['test_acc']:.2%} | {entry['test_acc']:.2%} "
                        f"| {drop:+.2f} | {entry['size_bytes'] / 1e6:.2f} | {'met' if ok else 'not met'} |")
    largest = [(label, s) for name, label, _, s in checks if name == "largest"]
    lines = [
        "## int8 deployment (`benchmarks/int8.py`)\n",
        f"Zoo supernet `{args.supernet}` (trained `tiny-mbv3`, CIFAR-10); {measured_on()} Load average {load:.2f} at "
        f"start; {(time.time() - started) / 60:.1f} min. int8 files calibrated on {CALIBRATION_IMAGES} training images; "
        f"agreement = top-1 agreement with PyTorch fp32 on {AGREEMENT_IMAGES:,} test images; accuracy on the "
        "10,000 CIFAR-10 test images; latency batch 1, 1 thread, every file timed in one interleaved session "
        "(lowest of 8 protocol windows). Goals: agreement ≥ 98%, drop ≤ 1 point; largest subnet int8 ≥ 1.3× "
        "faster than fp32 on both runtimes.\n",
        "| subnet | int8 file | fp32 ms | int8 ms | fp32 / int8 | agreement | fp32 acc | int8 acc | drop (pts) | int8 MB "
        "| accuracy goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Accuracy goal met by {sum(ok for *_, ok, _ in checks)}/{len(checks)} int8 files. Largest subnet, fp32 / int8: "
        + ", ".join(f"{label} {s:.2f}×" for label, s in largest)
        + f" (goal ≥ {GOAL_SPEEDUP}×: {'met' if largest and min(s for _, s in largest) >= GOAL_SPEEDUP else 'not met'}).",
    ]
    text = "\n".join(lines)
    save_section("int8", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
