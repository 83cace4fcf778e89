"""``hwnas train``: one command from a local dataset to a trained supernet, its curves and its results table.

Writes into ``out``: ``config.json`` (the run's settings, normalisation and split), ``log.csv`` (one
row per step), ``phase_eval.json`` (holdout accuracy of the reference subnets after each phase),
``training.png``, ``checkpoint/`` (resumable state), ``supernet.safetensors`` and ``results.json``
(test accuracy of the smallest, middle and largest subnet after BN recalibration). Under torchrun the
ranks share the work of training; rank 0 evaluates and writes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import read_json, write_json_atomic
from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..data.transforms import TrainTransform
from ..eval import EvalData, Launch, barrier, load_eval_data, process_group, reference_subnets, subnet_accuracy
from ..nn.checkpoint import save_supernet
from ..nn.supernet import OFAMobileNetV3
from ..space.registry import get_space
from .allocator import keep_freed_memory
from .plots import plot_training, read_log
from .schedule import Phase, crop_padding, make_schedule
from .trainer import TrainConfig, Trainer

BASE_BATCH = 128  # the schedules' LRs are for this global batch


@dataclass(frozen=True)
class TrainOptions:
    """What ``hwnas train`` takes; defaults train ``tiny-mbv3`` on the shipped CIFAR-10 subset."""

    out: str
    data: str = "cifar10"
    data_dir: str | None = None
    space: str = "tiny-mbv3"
    schedule: str = "quick"
    epochs: tuple[float, ...] | None = None  # one per phase, replacing the schedule's (None: the schedule's own)
    batch_size: int = BASE_BATCH       # global: split evenly over the ranks
    holdout: float = 0.1               # of the training images, class-stratified: BN recalibration + validation
    bn_images: int = 2000              # holdout images used to recalibrate BatchNorm before each evaluation
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    checkpoint_every: int = 200
    max_steps_per_phase: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in config.json (e.g. the command line)


def data_source(options: TrainOptions) -> dict[str, Any]:
    """Where the training data came from and how it was split: enough to rebuild the same holdout later."""
    return {"name": options.data, "data_dir": None if options.data_dir is None else str(Path(options.data_dir).resolve()),
            "holdout": options.holdout, "seed": options.seed, "bn_images": options.bn_images}


def _check(options: TrainOptions, launch: Launch) -> int:
    """The per-rank batch, or ValueError naming the option that cannot work."""
    if options.batch_size < 1 or options.batch_size % launch.world_size:
        raise ValueError(f"batch_size={options.batch_size} must be a positive multiple of the {launch.world_size} ranks")
    if not 0.0 < options.holdout < 1.0:
        raise ValueError(f"holdout={options.holdout} must be a fraction in (0, 1)")
    if options.bn_images < 1:
        raise ValueError(f"bn_images={options.bn_images} must be >= 1")
    return options.batch_size // launch.world_size


def train_supernet(options: TrainOptions) -> dict[str, Any]:
    """Run the whole job (resuming when asked) and return what ``results.json`` holds (rank 0) or ``{}``."""
    started = time.perf_counter()
    keep_freed_memory()
    with process_group(options.device) as launch:
        per_rank_batch = _check(options, launch)
        out = Path(options.out)
        data, train = load_eval_data(data_source(options))
        space = get_space(options.space, num_classes=train.num_classes)
        schedule = make_schedule(space, options.schedule, options.epochs)
        torch.manual_seed(options.seed)
        model = OFAMobileNetV3(space, zero_init_residual=True).to(launch.device)
        augmentation = TrainTransform(data.preprocessing.mean, data.preprocessing.std,
                                      padding=crop_padding(options.schedule))
        loader = BatchLoader(train, per_rank_batch, seed=options.seed, transform=augmentation,
                             rank=launch.rank, world_size=launch.world_size)
        config = TrainConfig(seed=options.seed, lr_scale=options.batch_size / BASE_BATCH,
                             checkpoint_every=options.checkpoint_every, max_steps_per_phase=options.max_steps_per_phase)
        if launch.is_main and not options.resume:
            out.mkdir(parents=True, exist_ok=True)
        phase_eval_path = out / "phase_eval.json"

        def after_phase(phase: Phase, net: OFAMobileNetV3) -> None:
            subnets = reference_subnets(space)
            scores = {name: subnet_accuracy(net, subnets[name], data.calibration, data.validation, data.preprocessing)
                      for name in ("smallest", "largest")}
            # a resumed run may evaluate a phase again: its row is replaced, the order of phases kept
            rows = [row for row in _read_json(phase_eval_path, []) if row["phase"] != phase.name]
            write_json_atomic(phase_eval_path, [*rows, {"phase": phase.name, "holdout_acc": scores}])
            if options.progress:
                print(f"[train] after {phase.name}: holdout accuracy "
                      + ", ".join(f"{k} {v:.1%}" for k, v in scores.items()), flush=True)

        trainer = Trainer(model, schedule, loader, out, config, resume=options.resume,
                          show_progress=options.progress, on_phase_end=after_phase)
        if launch.is_main:
            write_json_atomic(out / "config.json", _run_config(options, launch, space, schedule, data, train,
                                                               trainer.total_steps, augmentation))
        trainer.run()
        results: dict[str, Any] = {}
        if launch.is_main:
            results = _finish(options, out, model, space, data, train, trainer, started)
        barrier()
        return results


def _finish(options: TrainOptions, out: Path, model: OFAMobileNetV3, space: Any, data: EvalData,
            train: ImageDataset, trainer: Trainer, started: float) -> dict[str, Any]:
    """Save the supernet, evaluate the reference subnets on the test set, write results and the plot."""
    model.eval()
    supernet_path = out / "supernet.safetensors"
    save_supernet(model, supernet_path, extra={
        "preprocessing": data.preprocessing.to_dict(), "classes": list(train.classes), "dataset": data.name,
        "data": data_source(options), "schedule": options.schedule,
        "input_layout": "NCHW float32, x/255 normalised per channel",
    })
    subnets = []
    for name, arch in reference_subnets(space).items():
        accuracy = subnet_accuracy(model, arch, data.calibration, data.test, data.preprocessing)
        subnets.append({"name": name, "arch": arch.to_dict(), "macs": space.macs(arch), "params": space.params(arch),
                        "test_acc": round(accuracy, 4)})
    results = {
        "supernet": str(supernet_path), "wall_s": round(time.perf_counter() - started, 1),
        "train_step_s": round(trainer.elapsed, 1), "steps": trainer.global_step, "schedule": options.schedule,
        "space": space.name, "dataset": {"train": len(train), "holdout_bn": len(data.calibration),
                                         "holdout_val": len(data.validation), "test": len(data.test)},
        "resumed": options.resume, "subnets": subnets,
    }
    write_json_atomic(out / "results.json", results)
    plot_training(read_log(out / "log.csv"), _read_json(out / "phase_eval.json", []), out / "training.png",
                  title=f"{space.name} · {options.schedule} schedule · {data.name}")
    return results


def _read_json(path: Path, default: Any) -> Any:
    return read_json(path) if path.exists() else default


def _run_config(options: TrainOptions, launch: Launch, space: Any, schedule: list[Phase], data: EvalData,
                train: ImageDataset, total_steps: int, augmentation: TrainTransform) -> dict[str, Any]:
    return {
        "augmentation": repr(augmentation), "init": "OFA he_fout; residual blocks' last BN scale zero",
        "options": asdict(options), "world_size": launch.world_size, "device": str(launch.device),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "space": space.name,
        "space_hash": space.content_hash, "schedule": [p.to_dict() for p in schedule], "total_steps": total_steps,
        "preprocessing": data.preprocessing.to_dict(), "classes": list(train.classes), "data": data_source(options),
        "split": {"train": len(train), "holdout": len(data.calibration) + len(data.validation),
                  "holdout_bn": len(data.calibration), "holdout_val": len(data.validation), "test": len(data.test)},
    }


def results_table(results: dict[str, Any]) -> str:
    """The final table as text: one row per reference subnet."""
    lines = [f"{'subnet':<10}{'resolution':>11}{'MACs':>10}{'params':>10}{'test acc':>10}"]
    for row in results["subnets"]:
        lines.append(f"{row['name']:<10}{row['arch']['r']:>11}{row['macs'] / 1e6:>9.1f}M{row['params'] / 1e6:>9.2f}M"
                     f"{row['test_acc']:>10.2%}")
    return "\n".join(lines)
