"""Which subnets should the last phase train every step? An A/B of sandwich bounds from one shared supernet.

Heavy (all five arms: about 70 min on 2 AVX-512 cores, twice that on AVX2), so ``make bench`` reuses the
sections this script last wrote:

    python benchmarks/last_phase_bounds.py [--schedule quick] [--threads 2] [--seed 0] [--arms A,B]

``--seed`` replicates the whole A/B from another initialisation, batch order and sampler (its section goes
to ``sections/last_phase_bounds.seedS.md`` beside seed 0's); ``--arms`` runs a subset of the arms.

The `quick` schedule's first five phases (teacher → expand-1) run once on full CIFAR-10
(../shared/data/cifar10, tiny-mbv3, batch 128); the last phase (expand-2, all choices open) then runs
once per arm from copies of that state, with the same teacher, the same loader position and the same
resolution sampler:

- ``uniform-2``: OFA as defined: 2 uniform subnets per step (the `quick` schedule);
- ``smallest+1``: the phase's smallest subnet plus 1 uniform (same number of subnets per step);
- ``smallest+2``: the smallest plus 2 uniform;
- ``largest+smallest+1``: BigNAS's sandwich, the largest and the smallest plus 1 uniform (same number of
  subnets as smallest+2; what the `standard` schedule does).
- ``largest+smallest+2``: the sandwich with 2 uniform draws (one subnet more per step: does the uniform
  draw that the largest displaced pay for the smallest's and middle's loss?).

Each arm reports test accuracy of the smallest, middle and largest subnets (BN recalibrated on the
holdout, as ``hwnas train``) and its training time, so what an arm gains for one subnet is set against
what it costs the others and the clock.
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
HEAVY = True  # make bench reuses sections/last_phase_bounds.md unless HWNAS_BENCH_HEAVY=1
# arm: (with_largest, with_smallest, subnets per step)
ARMS = {"uniform-2": (False, False, 2), "smallest+1": (False, True, 2), "smallest+2": (False, True, 3),
        "largest+smallest+1": (True, True, 3), "largest+smallest+2": (True, True, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="quick", choices=["quick", "standard"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "last-phase-bounds")
    parser.add_argument("--seed", type=int, default=0, help="model init, batch order and subnet sampler")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {list(ARMS)}")
    parser.add_argument("--max-steps-per-phase", type=int, default=None, help="smoke test: cap every phase")
    args = parser.parse_args()
    arms = args.arms.split(",")
    if unknown := [arm for arm in arms if arm not in ARMS]:
        parser.error(f"unknown arms {unknown}; choose from {list(ARMS)}")
    if not DATA.is_dir():
        print(f"{title(args.seed)}\n\nNot run: {DATA} is missing.")
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
    torch.manual_seed(args.seed)
    model = OFAMobileNetV3(space, zero_init_residual=True)
    transform = TrainTransform(data.preprocessing.mean, data.preprocessing.std, padding=crop_padding(args.schedule))
    loader = BatchLoader(train, 128, seed=args.seed, transform=transform)
    config = TrainConfig(seed=args.seed, checkpoint_every=0, max_steps_per_phase=args.max_steps_per_phase)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    shared = Trainer(model, prefix, loader, args.out / "shared", config)
    shared.run()
    shared_s = time.perf_counter() - start
    loader_state, sampler_state = loader.state_dict(), shared.rng.bit_generator.state
    subnets = reference_subnets(space)

    rows = []
    for name in arms:
        with_largest, with_smallest, per_step = ARMS[name]
        arm_model = copy.deepcopy(model)
        loader.load_state_dict(loader_state)
        phase = replace(last, with_largest=with_largest, with_smallest=with_smallest, subnets_per_step=per_step)
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
    section = render(args.schedule, args.seed, phases, shared_s, rows, load, space, subnets)
    if args.max_steps_per_phase is None:  # a capped smoke run must not replace the measured section
        SECTIONS.mkdir(exist_ok=True)
        write_text_atomic(SECTIONS / ("last_phase_bounds.md" if args.seed == 0 else f"last_phase_bounds.seed{args.seed}.md"),
                          section)
    print(section)
    return 0


def title(seed: int) -> str:
    """The section's heading; replicates name their seed so each keeps its own line in the README table."""
    return "## Sandwich bounds in the last phase" + (f", seed {seed}" if seed else "") + " (`benchmarks/last_phase_bounds.py`)"


def render(schedule: str, seed: int, phases: list, shared_s: float, rows: list[dict], load: list[float], space,
           subnets) -> str:
    last = phases[-1]
    by_arm = {row["arm"]: row for row in rows}
    refs = [by_arm[arm] for arm in ("uniform-2", "smallest+2") if arm in by_arm]
    lines = [
        title(seed), "",
        f"`{schedule}` schedule's first five phases once on full CIFAR-10 (tiny-mbv3, batch 128, one process, "
        f"{shared_s / 60:.1f} min), then its last phase ({last.name}, {last.epochs:g} epochs, LR {last.lr:g}, all choices "
        "open) once per arm from copies of that state: same teacher, same batches, same resolution sampler. "
        f"Test accuracy after BN recalibration; load average {load[0]:.2f} at start, {load[1]:.2f} at end. "
        + measured_on(), "",
        "| last phase trains | smallest ({:.1f} M MACs) | middle ({:.1f} M) | largest ({:.1f} M) | phase time | ".format(
            *(space.macs(subnets[k]) / 1e6 for k in ("smallest", "middle", "largest")))
        + "".join(f"vs {ref['arm']} | " for ref in refs).rstrip(),
        "|---|---:|---:|---:|---:|" + "---:|" * len(refs),
    ]
    for row in rows:
        versus = [", ".join(f"{k} {v:+.2f}" for k, v in gains(row, ref).items()) if row is not ref else "—"
                  for ref in refs]
        lines.append(f"| {row['arm']} | {row['smallest']:.2%} | {row['middle']:.2%} | {row['largest']:.2%} | "
                     f"{row['train_s'] / 60:.1f} min | " + "".join(f"{v} | " for v in versus).rstrip())
    lines += ["", "Differences in test-accuracy points.", "", verdict(by_arm)]
    return "\n".join(lines) + "\n"


def gains(row: dict, base: dict) -> dict[str, float]:
    """Test-accuracy points an arm gains over the baseline arm, per reference subnet."""
    return {k: 100 * (row[k] - base[k]) for k in ("smallest", "middle", "largest")}


def verdict(by_arm: dict[str, dict]) -> str:
    """The rules the `standard` schedule's last phase follows.

    Training the smallest every step must give it a clear gain at little cost to the others (against
    uniform-2); adding the largest (the sandwich) must give the largest a gain at little cost to the
    others, for the same number of subnets per step (against smallest+2).
    """
    results = []
    for arm, ref, target in (("smallest+1", "uniform-2", "smallest"), ("smallest+2", "uniform-2", "smallest"),
                             ("largest+smallest+1", "smallest+2", "largest"),
                             ("largest+smallest+2", "smallest+2", "largest")):
        if arm not in by_arm or ref not in by_arm:
            continue
        gain = gains(by_arm[arm], by_arm[ref])
        others = [k for k in gain if k != target]
        ok = gain[target] >= (2 if target == "smallest" else 0.5) and all(gain[k] >= -0.5 for k in others)
        results.append(f"{arm} vs {ref} {'met' if ok else 'not met'} (" + ", ".join(f"{k} {v:+.2f}" for k, v in gain.items())
                       + ")")
    return ("Goal (training the smallest every step gains it ≥ 2 points against uniform-2; the sandwich gains the "
            "largest ≥ 0.5 against smallest+2; each costs the other subnets ≤ 0.5): " + "; ".join(results) + ".")


if __name__ == "__main__":
    sys.exit(main())
