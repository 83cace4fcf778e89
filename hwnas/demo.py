"""``hwnas demo``: the end-to-end job on shipped data, offline. Stages land as their issues do."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .space import get_space

PENDING = [
    ("accuracy predictor + search for 3 budgets", "search"),
    ("export ONNX/TFLite with verification", "deploy"),
]


def profile_stage(out: Path, space_name: str = "tiny-mbv3", target_name: str = "ort-cpu") -> None:
    """Profile this CPU for the space and validate end to end; a finished profile in ``out`` is reused."""
    from .latency import LatencyPredictor, LatencyTable
    from .latency.profiler import profile
    from .latency.targets import get_target
    from .latency.validate import validate

    space = get_space(space_name)
    folder = out / f"profile-{target_name}-{space_name}"
    lut = folder / "lut.json"
    target = get_target(target_name, threads=1)
    if lut.exists() and LatencyTable.load(lut).calibration:
        print(f"[profile] reusing {lut}")
    else:
        table = profile(space, target, folder)
        print(f"[profile] {len(table)} ops of {space_name} timed on {target_name} (1 thread) in "
              f"{table.metadata['profile_seconds']:.0f} s")
        validate(space, target, folder, n=40)
    table = LatencyTable.load(lut)
    report = table.calibration["validation"]
    raw, calibrated = report["holdout_uncalibrated"], report["holdout_calibrated"]
    print(f"[profile] held-out subnets within ±5%: {raw['within_5pct']:.0%} raw op sum -> "
          f"{calibrated['within_5pct']:.0%} calibrated (RMSPE {raw['rmspe_pct']:.1f}% -> {calibrated['rmspe_pct']:.1f}%); "
          f"plot: {folder / 'validation.png'}")
    predictor = LatencyPredictor(space, table)
    low, high = predictor.predict([space.min_arch(), space.max_arch()])
    print(f"[profile] predicted latency: smallest subnet {low:.3f} ms, largest {high:.3f} ms")


def train_stage(out: Path, space_name: str = "tiny-mbv3") -> dict:
    """Train a supernet with the quick schedule on the shipped CIFAR-10 subset; a finished run is reused,
    an interrupted one resumed."""
    from .train import TrainOptions, train_supernet
    from .train.run import results_table

    folder = out / f"train-{space_name}-quick"
    if (folder / "results.json").exists():
        print(f"[train] reusing {folder / 'results.json'}")
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    else:
        resume = (folder / "checkpoint" / "state.json").exists()
        print(f"[train] progressive shrinking of {space_name} on the shipped CIFAR-10 subset (quick schedule"
              f"{', resuming' if resume else ''})")
        results = train_supernet(TrainOptions(out=str(folder), space=space_name, schedule="quick", resume=resume))
    print(results_table(results))
    print(f"[train] supernet {results['supernet']}; curves {folder / 'training.png'}; {results['wall_s']:.0f} s")
    return results


def run_demo(out: Path) -> int:
    """Run every stage that exists and say plainly which ones do not yet."""
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    space = get_space("tiny-mbv3")
    rng = np.random.default_rng(0)
    codes = space.sample_codes(10_000, rng)
    macs = np.array([space.macs(a) for a in space.decode(codes[:200])])
    print(f"[space] {space.name} (hash {space.content_hash}): {space.num_blocks} block slots, kernels {space.ks}, "
          f"expand {space.expand}, depth {space.depth}, resolutions {space.resolutions}")
    print(f"[space] {len(space.all_signatures())} distinct operators to profile; "
          f"MACs of 200 random subnets: {macs.min() / 1e6:.1f}–{macs.max() / 1e6:.1f} M "
          f"(min arch {space.macs(space.min_arch()) / 1e6:.1f} M, max arch {space.macs(space.max_arch()) / 1e6:.1f} M)")
    profile_stage(out)
    train_stage(out)
    for stage, issue in PENDING:
        print(f"[not yet] {stage}: arrives with the {issue} issue")
    print(f"demo finished in {time.time() - start:.1f} s; outputs in {out}")
    return 0
