"""Does training the smallest subnet every step of the last phase pay? An A/B from one shared supernet.

Heavy (about 75 min on 2 AVX2 cores), so ``make bench`` reuses the section this script last wrote:

    python benchmarks/smallest_every_step.py [--schedule quick] [--threads 2]

The `quick` schedule's first five phases (teacher → expand-1) run once on full CIFAR-10
(../shared/data/cifar10, tiny-mbv3, batch 128); the last phase (expand-2, all choices open) then runs
three times from copies of that state, with the same teacher, the same loader position and the same
resolution sampler:

- ``uniform-2``: OFA as defined: 2 uniform subnets per step (the `quick` schedule);
- ``smallest+1``: the phase's smallest subnet plus 1 uniform (same number of subnets per step);
- ``smallest+2``: the smallest plus 2 uniform (what the `standard` schedule does).

Each arm reports test accuracy of the smallest, middle and largest subnets (BN recalibrated on the
holdout, as ``hwnas train``) and its training time, so the gain for small subnets is set against what
it costs the others and the clock.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from run_all import measured_on  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
SECTIONS = Path(__file__).resolve().parent / "sections"
HEAVY = True  # make bench reuses sections/smallest_every_step.md unless HWNAS_BENCH_HEAVY=1
ARMS = {"uniform-2": (False, 2), "smallest+1": (True, 2), "smallest+2": (True, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="quick", choices=["quick", "standard"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "smallest-every-step")
    parser.add_argument("--max-steps-per-phase", type=int, default=None, help="smoke test: cap every phase")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"## Smallest subnet every step\n\nNot run: {DATA} is missing.")
        return 0
    torch.set_num_threads(args.threads)

    from hwnas.atomic import write_json_atomic, write_text_atomic
    from hwnas.data.loader import BatchLoader
    from hwnas.data.transforms import TrainTransform
    from hwnas.nn.supernet import OFAMobileNetV3
    from hwnas.space import get_space
    from hwnas.train import TrainConfig, Trainer, crop_padding, make_schedule
    from hwnas.train.evaluate import reference_subnets, subnet_accuracy
    from hwnas.train.run import DEFAULT_DATA_SOURCE, load_eval_data

    load = [os.getloadavg()[0]]
    data, train = load_eval_data({**DEFAULT_DATA_SOURCE, "data_dir": str(DATA)})
    space = get_space("tiny-mbv3", num_classes=train.num_classes)
    phases = make_schedule(space, args.schedule)
    prefix, last = phases[:-1], phases[-1]
    torch.manual_seed(0)
    model = OFAMobileNetV3(space, zero_init_residual=True)
    transform = TrainTransform(data.preprocessing.mean, data.preprocessing.std, padding=crop_padding(args.schedule))
    loader = BatchLoader(train, 128, seed=0, transform=transform)
    config = TrainConfig(seed=0, checkpoint_every=0, max_steps_per_phase=args.max_steps_per_phase)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    shared = Trainer(model, prefix, loader, args.out / "shared", config)
    shared.run()
    shared_s = time.perf_counter() - start
    loader_state, sampler_state = loader.state_dict(), shared.rng.bit_generator.state
    subnets = reference_subnets(space)

    rows = []
    for name, (with_smallest, per_step) in ARMS.items():
        arm_model = copy.deepcopy(model)
        loader.load_state_dict(loader_state)
        phase = replace(last, with_smallest=with_smallest, subnets_per_step=per_step)
        trainer = Trainer(arm_model, [phase], loader, args.out / name, config)
        trainer.teacher = shared.teacher  # the same frozen full network for every arm
        trainer.rng.bit_generator.state = sampler_state
        arm_start = time.perf_counter()
        trainer.run()
        arm_s = time.perf_counter() - arm_start
        arm_model.eval()
        accs = {k: subnet_accuracy(arm_model, arch, data.calibration, data.test, data.preprocessing)
                for k, arch in subnets.items()}
        rows.append({"arm": name, "train_s": arm_s, "steps": trainer.global_step, **accs})
        print(f"[ab] {name}: " + ", ".join(f"{k} {v:.2%}" for k, v in accs.items()) + f" ({arm_s / 60:.1f} min)",
              file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])
    write_json_atomic(args.out / "ab.json", {"shared_s": shared_s, "rows": rows, "load": load})
    section = render(args.schedule, phases, shared_s, rows, load, space, subnets)
    SECTIONS.mkdir(exist_ok=True)
    write_text_atomic(SECTIONS / "smallest_every_step.md", section)
    print(section)
    return 0


def render(schedule: str, phases: list, shared_s: float, rows: list[dict], load: list[float], space, subnets) -> str:
    last = phases[-1]
    base = rows[0]
    lines = [
        "## Smallest subnet every step in the last phase (`benchmarks/smallest_every_step.py`)", "",
        f"`{schedule}` schedule's first five phases once on full CIFAR-10 (tiny-mbv3, batch 128, one process, "
        f"{shared_s / 60:.1f} min), then its last phase ({last.name}, {last.epochs:g} epochs, LR {last.lr:g}, all choices "
        "open) three times from copies of that state: same teacher, same batches, same resolution sampler. "
        f"Test accuracy after BN recalibration; load average {load[0]:.2f} at start, {load[1]:.2f} at end. "
        + measured_on(), "",
        "| last phase trains | smallest ({:.1f} M MACs) | middle ({:.1f} M) | largest ({:.1f} M) | phase time "
        "| vs uniform-2 |".format(*(space.macs(subnets[k]) / 1e6 for k in ("smallest", "middle", "largest"))),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        delta = ", ".join(f"{k} {v:+.2f}" for k, v in gains(row, base).items()) if row is not base else "—"
        lines.append(f"| {row['arm']} | {row['smallest']:.2%} | {row['middle']:.2%} | {row['largest']:.2%} | "
                     f"{row['train_s'] / 60:.1f} min | {delta} (points) |")
    lines += ["", verdict(rows)]
    return "\n".join(lines) + "\n"


def gains(row: dict, base: dict) -> dict[str, float]:
    """Test-accuracy points an arm gains over the baseline arm, per reference subnet."""
    return {k: 100 * (row[k] - base[k]) for k in ("smallest", "middle", "largest")}


def verdict(rows: list[dict]) -> str:
    """The rule the `standard` schedule's setting follows: a clear gain for the smallest, little cost elsewhere."""
    results = []
    for row in rows[1:]:
        gain = gains(row, rows[0])
        ok = gain["smallest"] >= 2 and gain["middle"] >= -0.5 and gain["largest"] >= -0.5
        results.append(f"{row['arm']} {'met' if ok else 'not met'} ({gain['smallest']:+.2f}, {gain['middle']:+.2f}, "
                       f"{gain['largest']:+.2f})")
    return ("Goal (the smallest gains ≥ 2 points, the middle and largest lose ≤ 0.5 each, against uniform-2): "
            + "; ".join(results) + ".")


if __name__ == "__main__":
    sys.exit(main())
