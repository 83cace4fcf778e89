"""Progressive shrinking on full CIFAR-10 (`tiny-mbv3`): wall time, subnet accuracy, and the PS claim.

Heavy (the quick schedule takes up to 30 min on 2 cores, the standalone baselines as long again), so
``make bench`` reuses the section this script last wrote (``benchmarks/sections/``) unless run with
``HWNAS_BENCH_HEAVY=1``; run it directly to re-measure:

    python benchmarks/train_cifar.py [--schedule quick|standard] [--nproc 2] [--no-standalone] [--from-run DIR]
    python benchmarks/train_cifar.py --schedule standard --nproc 2 --out DIR --resume   # after a kill
    python benchmarks/train_cifar.py --from-run DIR --standalone smallest               # one baseline at a time
    python benchmarks/train_cifar.py --schedule standard --epochs 12,3,1,3,1,16 ...     # its epochs spent otherwise

1. ``hwnas train`` on ../shared/data/cifar10 (under ``torchrun`` with ``--nproc`` > 1), timed by the wall
   clock of the whole command: data loading, training, per-phase evaluation, BN recalibration, test.
2. The progressive-shrinking claim: the smallest, middle and largest subnets taken from the supernet
   (BN recalibrated) against the same architectures trained alone from fresh weights for as many
   optimiser steps as the whole supernet run took, same batch, augmentation and LR recipe (teacher
   phase LR, cosine, same warm-up), no distillation. Each finished baseline is kept in OUT/standalone.json
   and reported again by later calls, so that baselines longer than one session (the standard schedule's
   largest takes about as long as the supernet run) can be trained one per call with ``--standalone NAME``;
   a baseline already kept is not trained again. A baseline in training checkpoints to
   OUT/standalone-NAME/ every 500 steps: the same command after a kill continues it there.
``--from-run DIR`` skips step 1 and reports the run this script (or ``hwnas train``) already made in DIR,
with the wall time that run recorded itself. ``--resume`` continues a run that was killed (its machine
taken back mid-run) from its last checkpoint; the section then says it ran in segments, and on which machines.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from run_all import measured_on  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
SECTIONS = Path(__file__).resolve().parent / "sections"
HEAVY = True  # make bench reuses sections/train_cifar-*.md unless HWNAS_BENCH_HEAVY=1
TITLE = "Progressive shrinking on CIFAR-10"  # one RESULTS.md section, one part per schedule
GOALS = {"quick": {"wall_s": 1800, "largest": 0.70, "smallest": 0.60},
         "standard": {"wall_s": 3 * 3600, "largest": 0.85, "smallest": 0.78}}


def run_training(schedule: str, nproc: int, out: Path, resume: bool = False,
                 epochs: str | None = None) -> tuple[dict, float, list[float], str, int]:
    """Run (or, with ``resume``, continue) ``hwnas train``; its wall clock, load and machine go to OUT/bench.json.

    Every call is one segment, recorded in OUT/segments.json before it starts, so that a segment killed
    with its machine (a long run on a lent VM) still says where it ran. The wall clock of a run made of
    several segments is estimated as all segments' optimiser-step time (restored from the checkpoints,
    work lost after the last one excluded) plus the last segment's time outside the steps.
    """
    from hwnas.atomic import write_json_atomic

    command = ["-m", "hwnas", "train", "--data-dir", str(DATA), "--schedule", schedule, "--out", str(out)]
    command += ["--resume"] if resume else []
    command += ["--epochs", epochs] if epochs else []
    segments_path = out / "segments.json"
    segments = json.loads(segments_path.read_text()) if resume and segments_path.exists() else []
    at = json.loads((out / "checkpoint" / "state.json").read_text()) if resume else {"global_step": 0, "elapsed_s": 0.0}
    if nproc > 1:
        command = ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *command]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    else:
        env = dict(os.environ)
    load = [os.getloadavg()[0]]
    measured = measured_on()  # kept with the run: --from-run may report it on another day or machine
    segments.append({"measured_on": measured, "from_step": at["global_step"], "step_s_before": at["elapsed_s"]})
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(segments_path, segments)
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    load.append(os.getloadavg()[0])
    results = json.loads((out / "results.json").read_text())
    segments[-1].update(wall_s=wall, load=load, to_step=results["steps"])
    write_json_atomic(segments_path, segments)
    if len(segments) > 1:
        wall = results["train_step_s"] + (wall - (results["train_step_s"] - at["elapsed_s"]))
        measured = segments_line(segments)
    write_json_atomic(out / "bench.json", {"wall_s": wall, "load": load, "nproc": nproc, "measured_on": measured,
                                           "segments": len(segments)})
    return results, wall, load, measured, len(segments)


def segments_line(segments: list[dict]) -> str:
    """Where each segment of a resumed run ran, said once when they all ran on the same kind of machine."""
    machines = {seg["measured_on"] for seg in segments}
    starts = ", ".join(f"{seg['from_step']:,}" for seg in segments)
    if len(machines) == 1:
        return f"Segments from steps {starts}, all: {machines.pop()}"
    return "Segments: " + " ".join(f"from step {seg['from_step']:,}: {seg['measured_on']}" for seg in segments)


SUBNET_NAMES = ("smallest", "middle", "largest")


FIT_IMAGES = 5000  # training images the fit check scores each subnet on


def run_data(out: Path):
    """The evaluation data (BN-calibration split, test set, preprocessing) and training split of the run in
    ``out``, read from ../shared/data once per process: the fit check and the baselines share it."""
    return _run_data(out.resolve())


@functools.cache
def _run_data(out: Path):
    from hwnas.eval import load_eval_data

    config = json.loads((out / "config.json").read_text())
    return load_eval_data(config["data"], data_dir=str(DATA))


def train_fit(out: Path, results: dict) -> dict[str, float]:
    """Each reference subnet's accuracy on FIT_IMAGES of the run's own training images (seeded sample, no
    augmentation, BN recalibrated as for the test). Beside the test accuracy it tells underfitting (both
    low) from overfitting (a wide gap): what to change when a subnet falls short.

    Kept in OUT/train_fit.json under the supernet's SHA-256, the subnets and the sample size, so that later
    ``--from-run`` calls (one per baseline) do not score the same supernet again.
    """
    from hwnas.atomic import write_json_atomic

    key = {"supernet_sha256": hashlib.sha256((out / "supernet.safetensors").read_bytes()).hexdigest(),
           "images": FIT_IMAGES, "subnets": [[s["name"], s["arch"]] for s in results["subnets"]]}
    path = out / "train_fit.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    if kept.get("key") == key:
        return kept["accuracy"]
    accuracy = score_train_fit(out, results)
    write_json_atomic(path, {"key": key, "accuracy": accuracy})
    return accuracy


def score_train_fit(out: Path, results: dict) -> dict[str, float]:
    """``train_fit``'s measurement: each subnet of ``results`` scored on the seeded training sample."""
    import numpy as np
    import torch

    from hwnas.eval import subnet_accuracy
    from hwnas.nn import load_supernet
    from hwnas.space import Arch

    data, train = run_data(out)
    sample = train.subset(np.random.default_rng(0).choice(len(train), min(FIT_IMAGES, len(train)), replace=False))
    torch.set_num_threads(os.cpu_count() or 1)
    supernet = load_supernet(out / "supernet.safetensors")
    return {s["name"]: subnet_accuracy(supernet, Arch.from_dict(s["arch"]), data.calibration, sample,
                                       data.preprocessing) for s in results["subnets"]}


def standalone_rows(results: dict, out: Path, names: list[str]) -> list[dict]:
    """The PS claim's baselines: ``names`` trained alone unless OUT/standalone.json already holds them.

    A kept baseline counts only if it was trained for this run's number of steps on the same architecture
    (delete the file to train them again); each one is written there (atomically) as soon as it finishes, so
    running the same command again after a kill trains only the baselines still missing. A baseline depends on
    the architecture, the step count and the teacher phase's recipe only, so another run of as many steps may
    reuse the file (copied into its folder): the supernet column is always this run's.
    """
    from hwnas.atomic import write_json_atomic

    cache_path = out / "standalone.json"
    cached = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    entries = {entry["name"]: entry for entry in results["subnets"]}
    unknown = sorted(set(names) - set(entries))
    if unknown:
        raise SystemExit(f"--standalone {','.join(unknown)}: the run has subnets {', '.join(entries)}")
    fresh = {name: row for name, row in cached.items() if name in entries and row["steps"] == results["steps"]
             and row["arch"] == entries[name]["arch"]}
    to_train = [name for name in entries if name in names and name not in fresh]
    setup = standalone_setup(out) if to_train else None  # the dataset is read only when needed
    for name in to_train:
        checkpoint = out / f"standalone-{name}"
        fresh[name] = train_alone(results, setup, entries[name], checkpoint)
        write_json_atomic(cache_path, fresh)
        shutil.rmtree(checkpoint, ignore_errors=True)  # kept in standalone.json now
    return [{**fresh[name], "supernet": entries[name]["test_acc"]} for name in entries if name in fresh]


def standalone_setup(out: Path) -> dict:
    """What every baseline of the run in ``out`` shares: its space, training split, test set and recipe."""
    import torch

    from hwnas.space import get_space
    from hwnas.train import crop_padding, make_schedule

    config = json.loads((out / "config.json").read_text())
    options = config["options"]
    data, train = run_data(out)
    space = get_space(config["space"])
    teacher = make_schedule(space, options["schedule"])[0]
    steps_per_epoch = len(train) // options["batch_size"]
    torch.set_num_threads(os.cpu_count() or 1)
    return {"space": space, "train": train, "test": data.test, "preprocessing": data.preprocessing,
            "batch_size": options["batch_size"],
            "lr": teacher.lr * options["batch_size"] / 128, "seed": options["seed"],
            "warmup_steps": round(teacher.warmup_epochs * steps_per_epoch),
            "crop_padding": crop_padding(options["schedule"])}


def train_alone(results: dict, setup: dict, entry: dict, checkpoint: Path) -> dict:
    """One subnet of the run trained alone from fresh weights (resumed from ``checkpoint`` if killed before);
    its test accuracy beside the supernet's."""
    from hwnas.eval import accuracy
    from hwnas.space import Arch
    from hwnas.train import train_standalone

    arch = Arch.from_dict(entry["arch"])
    alone = train_standalone(setup["space"], arch, setup["train"], setup["preprocessing"], steps=results["steps"],
                             lr=setup["lr"], batch_size=setup["batch_size"], warmup_steps=setup["warmup_steps"],
                             crop_padding=setup["crop_padding"], seed=setup["seed"], checkpoint_dir=checkpoint)
    return {"name": entry["name"], "arch": entry["arch"], "r": arch.r, "macs": entry["macs"],
            "supernet": entry["test_acc"],
            "standalone": accuracy(alone.subnet, setup["test"], setup["preprocessing"], arch.r),
            "steps": alone.steps, "standalone_s": alone.wall_s, "segments": alone.segments,
            "measured_on": measured_on()}


def sittings(row: dict) -> str:
    """How many resumed parts a baseline's training time adds up from, when more than one."""
    return f" ({row['segments']} sittings)" if row.get("segments", 1) > 1 else ""


def phase_times_line(log_rows: list[dict]) -> str:
    """Optimiser-step time of each phase from the run's log.csv (cumulative seconds per step), and per step."""
    if not log_rows:
        return ""
    ends: dict[str, tuple[int, float]] = {}
    for row in log_rows:
        ends[row["phase"]] = (int(row["phase_step"]), float(row["seconds"]))
    parts, before = [], 0.0
    for phase, (steps, seconds) in ends.items():
        parts.append(f"{phase} {(seconds - before) / 60:.1f} min ({(seconds - before) / steps:.2f} s/step)")
        before = seconds
    return "Optimiser-step time per phase: " + "; ".join(parts) + ".\n"


def phases_line(phases: list[dict]) -> str:
    """The schedule the run trained with, from its config.json: schedules change, measured runs do not."""
    def one(p: dict) -> str:
        count = p["subnets_per_step"]
        bounds = [name for name in ("largest", "smallest") if p.get(f"with_{name}")]
        subnets = f"{count} subnet" + ("s" if count > 1 else "") + (f" ({' + '.join(bounds)} + uniform)" if bounds else "")
        extras = (["bounds at the extreme resolutions"] if p.get("bounds_at_extreme_resolutions") else []) + (
            ["in-place KD from the largest"] if p.get("distil_from_largest") else [])
        return f"{p['name']} {p['epochs']:g} ep · LR {p['lr']:g} · {subnets}" + "".join(f", {e}" for e in extras)
    return f"Phases ({sum(p['epochs'] for p in phases):g} epochs): " + "; ".join(one(p) for p in phases) + ".\n"


def phase_holdout_line(phase_eval: list[dict]) -> str:
    """Holdout accuracy of the reference subnets after each phase: where a run gained or lost its points."""
    if not phase_eval:
        return ""
    def one(row: dict) -> str:
        scores = " / ".join(f"{name} {acc:.1%}" for name, acc in sorted(row["holdout_acc"].items()))
        return f"{row['phase']}: {scores}"
    return "Holdout accuracy after each phase (BN recalibrated): " + "; ".join(one(r) for r in phase_eval) + ".\n"


def epochs_label(schedule: str, phases: list[dict]) -> str:
    """The ``--epochs`` that reproduces a run's phases today ('' when they are the schedule's own epochs).

    Read from the phases the run trained, not from the options it was given, so a section keeps naming what
    was measured after the schedule's default epochs change (a run of the old default then gets the label,
    a run whose ``--epochs`` became the default loses it).
    """
    from hwnas.train.schedule import schedule_epochs

    epochs = tuple(float(p["epochs"]) for p in phases)
    return "" if epochs == schedule_epochs(schedule) else ",".join(f"{e:g}" for e in epochs)


def section(schedule: str, nproc: int, results: dict, wall: float, load: list[float], rows: list[dict],
            phases: list[dict], measured: str, phase_eval: list[dict], segments: int = 1,
            log_rows: list[dict] | None = None, epochs: str = "", fit: dict[str, float] | None = None) -> str:
    goal = GOALS[schedule]
    accuracy = {s["name"]: s["test_acc"] for s in results["subnets"]}
    met = (wall <= goal["wall_s"] and accuracy["largest"] >= goal["largest"] and accuracy["smallest"] >= goal["smallest"])
    how = f"`torchrun --nproc-per-node {nproc}`" if nproc > 1 else "one process"
    lines = [
        f"## Progressive shrinking on CIFAR-10, `{schedule}` schedule{f', epochs {epochs}' if epochs else ''} "
        "(`benchmarks/train_cifar.py`)\n",
        f"`hwnas train --data-dir ../shared/data/cifar10 --space {results['space']} --schedule {schedule}"
        f"{f' --epochs {epochs}' if epochs else ''}`, {how}; "
        f"{results['dataset']['train']:,} training images "
        f"({results['dataset']['holdout_bn'] + results['dataset']['holdout_val']:,} held out), "
        f"{results['dataset']['test']:,} test images, {results['steps']:,} steps of batch 128. "
        + (f"Wall clock of the whole command: **{wall / 60:.1f} min** " if segments == 1 else
           f"Run in {segments} segments (resumed from checkpoints); wall clock estimated as all segments' training "
           f"steps plus the last one's other work: **{wall / 60:.1f} min** ")
        + f"(training steps {results['train_step_s'] / 60:.1f} min); "
        + (f"load average {load[0]:.2f} at start, {load[1]:.2f} at end. " if load[0] == load[0] else "")
        + f"{measured}\n",
        phases_line(phases) + phase_holdout_line(phase_eval) + phase_times_line(log_rows or []),
        "| subnet | resolution | MACs | test accuracy (supernet, BN recalibrated) |"
        + (f" accuracy on {FIT_IMAGES:,} of its training images |" if fit else ""),
        "|---|---:|---:|---:|" + ("---:|" if fit else ""),
    ]
    for s in results["subnets"]:
        lines.append(f"| {s['name']} | {s['arch']['r']} | {s['macs'] / 1e6:.1f} M | {s['test_acc']:.2%} |"
                     + (f" {fit[s['name']]:.2%} |" if fit else ""))
    lines.append(f"\nGoal (≤ {goal['wall_s'] / 60:.0f} min, largest ≥ {goal['largest']:.0%}, smallest ≥ "
                 f"{goal['smallest']:.0%}): {'met' if met else 'NOT met'} ({wall / 60:.1f} min, largest "
                 f"{accuracy['largest']:.2%}, smallest {accuracy['smallest']:.2%}).\n")
    if rows:
        lines += [
            "Progressive-shrinking claim: the same architecture trained alone from scratch for the same number of "
            "optimiser steps (same batch, augmentation, LR recipe; no distillation):\n",
            "| subnet | resolution | MACs | from the supernet | trained alone | difference | alone: wall |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(f"| {row['name']} | {row['r']} | {row['macs'] / 1e6:.1f} M | {row['supernet']:.2%} | "
                         f"{row['standalone']:.2%} | {100 * (row['supernet'] - row['standalone']):+.2f} pts | "
                         f"{row['standalone_s'] / 60:.1f} min{sittings(row)} |")
        missing = [s["name"] for s in results["subnets"] if s["name"] not in {row["name"] for row in rows}]
        if missing:
            lines.append(f"\nNot trained alone yet: {', '.join(missing)} (`--from-run DIR --standalone NAME`).")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="quick", choices=sorted(GOALS))
    parser.add_argument("--nproc", type=int, default=1, help="torchrun processes (default 1)")
    parser.add_argument("--no-standalone", action="store_true",
                        help="train no baseline now (those already in OUT/standalone.json are still reported)")
    parser.add_argument("--standalone", default=",".join(SUBNET_NAMES),
                        help="baselines to train alone, comma-separated, unless OUT/standalone.json holds them (default: all)")
    parser.add_argument("--out", help="run folder (default runs/bench/train-SCHEDULE)")
    parser.add_argument("--from-run", help="report this finished run instead of training again")
    parser.add_argument("--resume", action="store_true", help="continue the killed run in --out from its checkpoint")
    parser.add_argument("--epochs", help="hwnas train --epochs: the six phases' epochs, comma-separated (its own section)")
    args = parser.parse_args()
    if not (DATA / "cifar10_train.npz").is_file():
        print(f"## Progressive shrinking on CIFAR-10\n\nSkipped: {DATA} is missing.\n")
        return 0
    if args.from_run:
        out = Path(args.from_run)
        results = json.loads((out / "results.json").read_text())
        config = json.loads((out / "config.json").read_text())
        bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else {}
        wall, load = bench.get("wall_s", results["wall_s"]), bench.get("load", [float("nan")] * 2)
        measured = bench.get("measured_on", f"Reported on {time.strftime('%Y-%m-%d')} from {out}, which did not "
                                            "record the day or machine it was measured on.")
        args.schedule, args.nproc, segments = results["schedule"], config["world_size"], bench.get("segments", 1)
        if segments > 1 and (out / "segments.json").exists():
            measured = segments_line(json.loads((out / "segments.json").read_text()))
    else:
        out = Path(args.out or ROOT / "runs" / "bench" / f"train-{args.schedule}")
        if (out / "checkpoint").exists() != args.resume:
            raise SystemExit(f"{out} holds an earlier run; remove it, pass --out, or --resume it" if not args.resume
                             else f"--resume: {out} holds no checkpoint to continue")
        results, wall, load, measured, segments = run_training(args.schedule, args.nproc, out, args.resume, args.epochs)
    from hwnas.atomic import write_text_atomic
    from hwnas.train.plots import read_log

    names = [] if args.no_standalone else [n for n in args.standalone.split(",") if n]
    rows = standalone_rows(results, out, names)
    config = json.loads((out / "config.json").read_text())
    phases = config["schedule"]
    epochs = epochs_label(args.schedule, phases)
    phase_eval_path = out / "phase_eval.json"
    phase_eval = json.loads(phase_eval_path.read_text()) if phase_eval_path.exists() else []
    log_rows = read_log(out / "log.csv") if (out / "log.csv").exists() else []
    text = section(args.schedule, args.nproc, results, wall, load, rows, phases, measured, phase_eval, segments,
                   log_rows, epochs, train_fit(out, results))
    SECTIONS.mkdir(exist_ok=True)
    suffix = f"-epochs-{epochs.replace(',', '-')}" if epochs else ""
    write_text_atomic(SECTIONS / f"train_cifar-{args.schedule}{suffix}.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
