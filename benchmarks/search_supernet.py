"""Search with a trained `tiny-mbv3` supernet and the shipped CPU LUT: evolution vs gradient, measured.

Heavy (an accuracy dataset of a few hundred subnets measured on the holdout, then both searches and an
end-to-end re-measurement of what they found), so ``make bench`` reuses the section this script last
wrote unless ``HWNAS_BENCH_HEAVY=1``. Run it directly:

    python benchmarks/search_supernet.py [--supernet runs/bench/train-quick/supernet.safetensors] [--n-archs 400]

For each budget: the arch evolution finds (accuracy predictor + LUT) and the arch gradient search finds
(Gumbel-softmax in the supernet, abs penalty on the LUT's expected latency), each with its predicted
latency, its latency measured end to end with onnxruntime (1 thread, as the LUT was profiled), its
holdout accuracy (BN recalibrated) and the accuracy predictor's estimate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from run_all import measured_on  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = Path(__file__).resolve().parent / "sections"
HEAVY = True  # make bench reuses sections/search_supernet.md unless HWNAS_BENCH_HEAVY=1
LUT = ROOT / "device_profiles" / "ort-cpu-1t-tiny-mbv3" / "lut.json"
BUDGETS = (0.4, 0.6, 0.9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(ROOT / "runs" / "bench" / "train-quick" / "supernet.safetensors"))
    parser.add_argument("--n-archs", type=int, default=250)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "search"))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"),
                        help="the training data (for the holdout the supernet's run set aside)")
    args = parser.parse_args()
    if not Path(args.supernet).is_file():
        print(f"## Search with a trained supernet\n\nSkipped: {args.supernet} not found (run train_cifar.py first).\n")
        return 0
    sys.path.insert(0, str(ROOT))
    from hwnas.search.run import SearchOptions, run_search

    load = os.getloadavg()[0]
    common = {"supernet": args.supernet, "luts": [str(LUT)], "budgets_ms": [list(BUDGETS)], "n_archs": args.n_archs,
              "measure": True, "progress": False, "data_dir": args.data_dir}
    evolution = run_search(SearchOptions(out=args.out, strategy="evolution", **common))
    gradient = run_search(SearchOptions(out=args.out + "-gradient", strategy="gradient",
                                        predictor=str(Path(args.out) / "accuracy_predictor.safetensors"), **common))
    device = LUT.parent.name
    report = evolution["accuracy_predictor"]
    lines = [
        "## Search with a trained supernet (`benchmarks/search_supernet.py`)\n",
        f"Supernet `{Path(args.supernet).relative_to(ROOT) if ROOT in Path(args.supernet).parents else args.supernet}` "
        f"(`tiny-mbv3`, CIFAR-10); {measured_on()} LUT `{device}` (onnxruntime, 1 thread, calibrated). Accuracy predictor: "
        f"{report['n_train']} + {report['n_val']} subnets measured on the holdout in "
        f"{report.get('dataset_seconds', float('nan')) / 60:.1f} min; held-out Spearman {report['val']['spearman']:.3f}, "
        f"Kendall {report['val']['kendall']:.3f}, RMSE {report['val']['rmse_pts']:.2f} points. Load average "
        f"{load:.2f} at start. Measured: end to end on this machine, same runtime and threads as the LUT.\n",
        "| budget | strategy | predicted latency | measured latency | measured vs budget | machine speed now / at "
        "validation (4 anchors) | measured vs budget × speed | holdout accuracy | predictor's accuracy | MACs | search time |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, results in (("evolution", evolution), ("gradient", gradient)):
        per = results["search_seconds"] / (len(BUDGETS) if name == "gradient" else 1)
        for entry, budget in zip(results["found"], BUDGETS):
            measured = entry["measured_latency_ms"][device]
            factor = speed_of(entry, device)
            lines.append(f"| {budget:g} ms | {name} | {entry['latency_ms'][device]:.3f} ms | {measured:.3f} ms | "
                         f"{100 * (measured / budget - 1):+.1f}% | {factor:.3f} | "
                         f"{100 * (measured / (budget * factor) - 1):+.1f}% | {entry['holdout_accuracy']:.2%} | "
                         f"{entry['accuracy']:.2%} | {entry['macs'] / 1e6:.1f} M | "
                         f"{per:.2f} s{' (all budgets)' if name == 'evolution' else ''} |")
    within = [abs(e["measured_latency_ms"][device] / b - 1) <= 0.10 for e, b in zip(gradient["found"], BUDGETS)]
    within_now = [abs(e["measured_latency_ms"][device] / (b * speed_of(e, device)) - 1) <= 0.10
                  for e, b in zip(gradient["found"], BUDGETS)]
    lines.append(f"\nGoal (gradient-searched arch measured within 10% of its budget): {sum(within)}/{len(within)} "
                 f"budgets; against the budget scaled by the machine's speed now (the LUT's validation subnets "
                 f"nearest in latency, re-timed in the same rounds: this VM drifts by 10-20% within an hour): "
                 f"{sum(within_now)}/{len(within_now)}.\n")
    text = "\n".join(lines)
    SECTIONS.mkdir(exist_ok=True)
    (SECTIONS / "search_supernet.md").write_text(text + "\n", encoding="utf-8")
    (Path(args.out) / "bench.json").write_text(json.dumps({"load": load}))
    print(text)
    return 0


def speed_of(entry: dict, device: str) -> float:
    """The machine's speed now relative to the LUT's validation, as ``hwnas search --measure`` recorded it."""
    return float(entry["machine_speed_vs_validation"][device]["factor"])


if __name__ == "__main__":
    raise SystemExit(main())
