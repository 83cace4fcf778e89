"""The zoo supernet and the demo built on it, measured: what a newcomer's `make demo` gets.

Heavy (the demo from an empty folder, then every chosen subnet and the zoo's reference subnets counted on the
10,000 CIFAR-10 test images), so ``make bench`` reuses the section this script last wrote unless
``HWNAS_BENCH_HEAVY=1``. Run it directly on a quiet machine (the demo's wall time is part of the result):

    python benchmarks/zoo_demo.py [--data-dir ../shared/data/cifar10] [--out runs/bench/zoo-demo]

Figures: the shipped weights' smallest/middle/largest subnets on the full test set (BN recalibrated on 2,000
held-out training images, counted on onnxruntime) next to the model card's; the predictor's held-out report;
the demo's wall time, results table and checks; each demo subnet on the full test set too, since the
shipped 2,000 images carry a binomial error of ±0.8 points.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from run_all import measured_on, save_section  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
HEAVY = True  # make bench reuses sections/zoo_demo.md unless HWNAS_BENCH_HEAVY=1
ZOO = "tiny-mbv3-cifar10"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "zoo-demo"))
    args = parser.parse_args()
    if not (Path(args.data_dir) / "cifar10_test.npz").exists():
        print(f"## Zoo supernet and demo\n\nSkipped: no full CIFAR-10 test split in {args.data_dir}.\n")
        return 0
    sys.path.insert(0, str(ROOT))
    from hwnas.demo import run_demo
    from hwnas.demo.report import parse_table
    from hwnas.eval import checkpoint_eval_data, reference_subnets, subnet_accuracy
    from hwnas.nn.checkpoint import supernet_extra
    from hwnas.space.arch import Arch
    from hwnas.zoo import load

    load_start = os.getloadavg()[0]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    status = run_demo(out)
    demo_min = (time.perf_counter() - started) / 60
    report = (out / "report.md").read_text(encoding="utf-8")
    rows = parse_table(report)
    checks = report.split("## Checks", 1)[1].split("## Stages", 1)[0].strip()
    stages = next((line[2:] for line in report.splitlines() if line.startswith("- **Wall time**")), "")

    model = load(ZOO)
    net = model.supernet().eval()
    extra = supernet_extra(model.supernet_path)
    full, _ = checkpoint_eval_data(extra, args.data_dir, data=extra["training_data"])  # the training run's split
    preprocessing = full.preprocessing
    card = {row["name"]: row["test_acc"] for row in model.metadata["accuracy"]["test"]}
    reference = []
    for name, arch in reference_subnets(net.space).items():
        acc = subnet_accuracy(net, arch, full.calibration, full.test, preprocessing, engine="onnxruntime")
        reference.append(f"| {name} | r{arch.r} | {net.space.macs(arch) / 1e6:.1f} M | {100 * card[name]:.2f}% | "
                         f"{100 * acc:.2f}% |")
    demo_full = []
    for runtime in ("ort-cpu", "tflite"):
        found = json.loads((out / f"search-{runtime}" / "results.json").read_text())["found"]
        shipped = [r for r in rows if r["runtime"] == runtime]
        for entry, row in zip(found, shipped):
            arch = Arch.from_dict(entry["arch"])
            acc = subnet_accuracy(net, arch, full.calibration, full.test, preprocessing, engine="onnxruntime")
            demo_full.append(f"| {runtime} | {row['budget ms']} | {row['MACs M']} M | {row['test acc % fp32']}% | "
                             f"{100 * acc:.2f}% |")
    predictor = model.metadata["predictor"]
    val = predictor["val"]
    table = report.split("## Results", 1)[1].split("int8 is **experimental**", 1)[0].strip()
    text = "\n".join([
        "## Zoo supernet and demo (`benchmarks/zoo_demo.py`)", "",
        f"{measured_on()} Load average {load_start:.2f} at start. `make demo` from an empty output folder (shipped "
        f"LUTs of this CPU reused, nothing else cached): **{demo_min:.1f} min**, exit status {status}. {stages}", "",
        f"Zoo model `{ZOO}` (shipped weights; model card `zoo/{ZOO}/MODEL_CARD.md`) on the 10,000 CIFAR-10 test "
        "images, BN recalibrated on 2,000 held-out training images, counted on onnxruntime:", "",
        "| subnet | resolution | MACs | model card (training run) | re-measured from the shipped file |",
        "|---|---:|---:|---:|---:|", *reference, "",
        f"Accuracy predictor: {predictor['n_train']:,} + {predictor['n_val']:,} subnets drawn evenly over log-MACs, "
        f"measured on the 5,000-image validation split (never the test set); held out: Spearman {val['spearman']:.3f}, "
        f"Kendall {val['kendall']:.3f}, MAE {val['mae_pts']:.2f} pts, RMSE {val['rmse_pts']:.2f} pts; AdamW weight "
        f"decay {predictor.get('weight_decay', 0)} (docs/experiments/predictor-weight-decay.md).", "",
        "Demo results (accuracy on the 2,000 shipped test images):", "", table, "",
        "The demo's subnets on the full test set (same BN recalibration as above):", "",
        "| runtime | budget ms | MACs | shipped 2,000 | full 10,000 |", "|---|---:|---:|---:|---:|", *demo_full, "",
        "Checks, as the demo printed them:", "", checks, "",
        f"Goal (demo ≤ 5 min; largest ≥ 85% and smallest ≥ 78% on the full test set; predictor ρ ≥ 0.9, MAE ≤ 1 pt; "
        f"the demo's checks): demo {demo_min:.1f} min ({'met' if demo_min <= 5 else 'not met'}); largest "
        f"{card['largest']:.2%}, smallest {card['smallest']:.2%} "
        f"({'met' if card['largest'] >= 0.85 and card['smallest'] >= 0.78 else 'not met'}); ρ {val['spearman']:.3f}, "
        f"MAE {val['mae_pts']:.2f} pts ({'met' if val['spearman'] >= 0.9 and val['mae_pts'] <= 1 else 'not met'}); "
        f"checks held {checks.count('- held')}/{checks.count('- held') + checks.count('**not held**')}.",
    ])
    save_section("zoo_demo", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
