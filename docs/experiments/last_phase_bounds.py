"""Which subnets should the last phase train every step? An A/B of sandwich bounds from one shared supernet.

Heavy (the first five arms: about 70 min on 2 AVX-512 cores, twice that on AVX2; the two @extremes arms
10-11 min more each), a finished experiment (docs/experiments/sandwich_bounds.md), not part of ``make bench``:

    python docs/experiments/last_phase_bounds.py [--schedule quick] [--threads 2] [--seed 0] [--arms A,B] [--tag T]

``--seed`` replicates the whole A/B from another initialisation, batch order and sampler (its section goes
to ``sections/last_phase_bounds.seedS.md`` beside seed 0's); ``--arms`` runs a subset of the arms, and
``--tag`` gives that subset its own section (``sections/last_phase_bounds.seedS.TAG.md``); ``--report-only``
renders the section again from the ``ab.json`` a finished run left in ``--out``.

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
  draw that the largest displaced pay for the smallest's and middle's loss?);
- ``l+s+1@extremes``: the sandwich with its bounds where they are deployed (BigNAS): the largest at the
  highest resolution and the smallest at the lowest every step, the uniform draw at the sampled one; the
  teacher runs at the highest;
- ``l+s+1@extremes+inplace-kd``: the same distilling from the step's own largest instead of the teacher
  (BigNAS's in-place distillation: no teacher forward).

Each arm reports test accuracy of the smallest, middle and largest subnets (BN recalibrated on the
holdout, as ``hwnas train``) and its training time, so what an arm gains for one subnet is set against
what it costs the others and the clock.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from run_all import measured_on  # noqa: E402  (the benchmarks' machine line)

DATA = ROOT.parent / "shared" / "data" / "cifar10"
SECTIONS = Path(__file__).resolve().parent / "sections"  # a finished experiment: not part of make bench
# arm: the last phase's fields it changes
ARMS: dict[str, dict] = {
    "uniform-2": {"with_largest": False, "with_smallest": False, "subnets_per_step": 2},
    "smallest+1": {"with_largest": False, "with_smallest": True, "subnets_per_step": 2},
    "smallest+2": {"with_largest": False, "with_smallest": True, "subnets_per_step": 3},
    "largest+smallest+1": {"with_largest": True, "with_smallest": True, "subnets_per_step": 3},
    "largest+smallest+2": {"with_largest": True, "with_smallest": True, "subnets_per_step": 4},
    "l+s+1@extremes": {"with_largest": True, "with_smallest": True, "subnets_per_step": 3,
                       "bounds_at_extreme_resolutions": True},
    "l+s+1@extremes+inplace-kd": {"with_largest": True, "with_smallest": True, "subnets_per_step": 3,
                                  "bounds_at_extreme_resolutions": True, "distil_from_largest": True},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="quick", choices=["quick", "standard"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "last-phase-bounds")
    parser.add_argument("--seed", type=int, default=0, help="model init, batch order and subnet sampler")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {list(ARMS)}")
    parser.add_argument("--tag", default="", help="names a separate section (and file) for this set of arms")
    parser.add_argument("--report-only", action="store_true", help="re-render the section from OUT/ab.json")
    parser.add_argument("--max-steps-per-phase", type=int, default=None, help="smoke test: cap every phase")
    args = parser.parse_args()
    arms = args.arms.split(",")
    if unknown := [arm for arm in arms if arm not in ARMS]:
        parser.error(f"unknown arms {unknown}; choose from {list(ARMS)}")
    if not DATA.is_dir():
        print(f"{title(args.seed, args.tag)}\n\nNot run: {DATA} is missing.")
        return 0
    torch.set_num_threads(args.threads)

    from hwnas.atomic import write_json_atomic, write_text_atomic
    from hwnas.eval import DEFAULT_DATA_SOURCE, load_eval_data, reference_subnets
    from hwnas.space import get_space
    from hwnas.train import make_schedule

    data, train = load_eval_data({**DEFAULT_DATA_SOURCE, "data_dir": str(DATA)})
    space = get_space("tiny-mbv3", num_classes=train.num_classes)
    phases = make_schedule(space, args.schedule)
    if args.report_only:
        if not (args.out / "ab.json").is_file():
            parser.error(f"--report-only: {args.out / 'ab.json'} is missing; run the A/B into --out first")
        result = json.loads((args.out / "ab.json").read_text())
    else:
        result = run_arms(args, arms, data, train, space, phases)
        write_json_atomic(args.out / "ab.json", result)
    section = render(args.schedule, args.seed, args.tag, phases, result, space, reference_subnets(space))
    if result.get("max_steps_per_phase") is None:  # a capped smoke run must not replace the measured section
        SECTIONS.mkdir(exist_ok=True)
        write_text_atomic(SECTIONS / section_file(args.seed, args.tag), section)
    print(section)
    return 0


def run_arms(args: argparse.Namespace, arms: list[str], data, train, space, phases: list) -> dict:
    """The shared prefix once, then each arm's last phase from copies of its state; times and accuracies."""
    from hwnas.data.loader import BatchLoader
    from hwnas.data.transforms import TrainTransform
    from hwnas.eval import reference_subnets, subnet_accuracy
    from hwnas.nn.supernet import OFAMobileNetV3
    from hwnas.train import TrainConfig, Trainer, crop_padding

    load = [os.getloadavg()[0]]
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
        arm_model = copy.deepcopy(model)
        loader.load_state_dict(loader_state)
        phase = replace(last, **ARMS[name])
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
    return {"shared_s": shared_s, "rows": rows, "load": load, "max_steps_per_phase": args.max_steps_per_phase}


def section_file(seed: int, tag: str) -> str:
    """Seed 0's untagged section first, then its tagged ones, then the replicates (run_all sorts by name)."""
    if not tag:
        return "last_phase_bounds.md" if seed == 0 else f"last_phase_bounds.seed{seed}.md"
    return f"last_phase_bounds.seed{seed}.{tag}.md"


def title(seed: int, tag: str = "") -> str:
    """The section's heading; replicates and tagged sets of arms say so, to keep their own line in the README table."""
    return ("## Sandwich bounds in the last phase" + (f", {tag}" if tag else "") + (f", seed {seed}" if seed else "")
            + " (`docs/experiments/last_phase_bounds.py`)")


def render(schedule: str, seed: int, tag: str, phases: list, result: dict, space, subnets) -> str:
    last = phases[-1]
    shared_s, rows, load = result["shared_s"], result["rows"], result["load"]
    by_arm = {row["arm"]: row for row in rows}
    refs = [by_arm[arm] for arm in ("uniform-2", "smallest+2", "largest+smallest+1") if arm in by_arm]
    lines = [
        title(seed, tag), "",
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
    others, for the same number of subnets per step (against smallest+2); moving the bounds to the extreme
    resolutions must gain the smallest and the largest at little cost to the middle (against the sandwich);
    in-place distillation, which saves the teacher's forward, must cost no subnet more than 0.5 points.
    """
    rules = (  # arm, reference, subnets that must gain, points they must gain
        ("smallest+1", "uniform-2", ("smallest",), 2), ("smallest+2", "uniform-2", ("smallest",), 2),
        ("largest+smallest+1", "smallest+2", ("largest",), 0.5), ("largest+smallest+2", "smallest+2", ("largest",), 0.5),
        ("l+s+1@extremes", "largest+smallest+1", ("smallest", "largest"), 0.5),
        ("l+s+1@extremes+inplace-kd", "l+s+1@extremes", (), 0),
        ("l+s+1@extremes+inplace-kd", "largest+smallest+1", ("smallest", "largest"), 0.5))
    results = []
    for arm, ref, targets, needed in rules:
        if arm not in by_arm or ref not in by_arm:
            continue
        gain = gains(by_arm[arm], by_arm[ref])
        ok = all(gain[k] >= needed for k in targets) and all(v >= -0.5 for k, v in gain.items() if k not in targets)
        results.append(f"{arm} vs {ref} {'met' if ok else 'not met'} (" + ", ".join(f"{k} {v:+.2f}" for k, v in gain.items())
                       + ")")
    return ("Goal (training the smallest every step gains it ≥ 2 points against uniform-2; the sandwich gains the "
            "largest ≥ 0.5 against smallest+2; bounds at the extreme resolutions gain the smallest and the largest "
            "≥ 0.5 each against the sandwich; in-place distillation costs no subnet more than 0.5; each costs the "
            "other subnets ≤ 0.5): " + ("; ".join(results) or "no rule compares these arms") + ".")


if __name__ == "__main__":
    sys.exit(main())
