"""``hwnas zoo build``: turn a finished ``hwnas train`` run into a zoo entry, measuring what the entry claims.

1. The accuracy dataset: ``subnets`` archs drawn evenly over log-MACs (``hwnas.search.dataset``), each measured
   on the run's whole validation split (the holdout it never trained on) after BatchNorm recalibration on
   ``bn_images`` seeded training images; journaled in ``RUN/zoo-<name>/`` so a killed build resumes, and split
   over the ranks under ``torchrun``. Never the test set.
2. The accuracy predictor fitted on 80% of it and scored on the held-out 20%.
3. The three reference subnets' accuracy on the test images shipped with hwnas (the run's full-test figures
   come from its ``results.json``), with BN recalibrated on shipped training images, as a user without the
   full dataset will run them.
4. The entry folder, written beside the final one and renamed into place: the supernet (its ``extra`` now
   pointing at the shipped data, the training data kept as ``training_data``), the predictor, the measured
   pairs, the run's record under ``training/``, ``zoo.json`` with every file's SHA-256, and ``MODEL_CARD.md``.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import read_json, write_json_atomic, write_text_atomic
from ..data.datasets import get_dataset, split_holdout
from ..eval import Preprocessing, load_eval_data, process_group, reference_subnets, subnet_accuracy
from ..nn.checkpoint import load_supernet, save_supernet, supernet_extra
from ..search.accuracy_predictor import AccuracyPredictor
from ..search.costs import op_cost_predictor
from ..search.dataset import build_accuracy_dataset
from ..search.measured import MeasuredAccuracies
from .card import model_card
from .entry import FORMAT, FORMAT_VERSION, MANIFEST, sha256_of, zoo_root

# how a user without the full dataset evaluates the model: of the shipped subset's 5,000 training images 4,000
# are held out, 2,000 of those recalibrate BN (class-stratified) and 2,000 validate; its test images for accuracy
SHIPPED_SOURCE = {"name": "cifar10", "data_dir": None, "holdout": 0.8, "seed": 0, "bn_images": 2000}
RECORD_FILES = ("config.json", "results.json", "log.csv", "phase_eval.json", "segments.json", "bench.json",
                "training.png", "COMMIT.txt")


@dataclass(frozen=True)
class BuildOptions:
    run: str                      # a finished hwnas train folder
    name: str
    summary: str = ""
    root: str | None = None       # zoo root (default hwnas.zoo.zoo_root())
    data_dir: str | None = None   # where the run's training data is now (default: the folder it recorded)
    subnets: int = 1250
    seed: int = 0
    bn_images: int = 2000
    engine: str = "onnxruntime"
    commit: str | None = None     # the hwnas commit that trained the run (default: RUN/COMMIT.txt's first word)
    reproduce: str = ""           # the commands that remake the run and the entry, for the card
    device: str = "cpu"
    progress: bool = True


def _stderr(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n))


def _reference_rows(net: Any, calibration: Any, test: Any, preprocessing: Preprocessing, engine: str) -> list[dict]:
    space = net.space
    rows = []
    for name, arch in reference_subnets(space).items():
        acc = subnet_accuracy(net, arch, calibration, test, preprocessing, engine=engine)
        rows.append({"name": name, "arch": arch.to_dict(), "macs": space.macs(arch), "params": space.params(arch),
                     "test_acc": round(acc, 4), "stderr": round(_stderr(acc, len(test)), 4)})
    return rows


def build_entry(options: BuildOptions) -> Path:
    """Measure and write the entry; returns its folder (every rank returns it, rank 0 writes it)."""
    run = Path(options.run)
    for needed in ("supernet.safetensors", "results.json", "config.json"):
        if not (run / needed).is_file():
            raise ValueError(f"{run}: no {needed}; zoo build takes a finished hwnas train run")
    if options.subnets < 10:
        raise ValueError(f"subnets={options.subnets}: the predictor needs at least 10 measured subnets")
    config, results = read_json(run / "config.json"), read_json(run / "results.json")
    started = time.perf_counter()
    with process_group(options.device) as launch:
        torch.manual_seed(options.seed)
        net = load_supernet(run / "supernet.safetensors", launch.device).eval()
        space, source = net.space, config["data"]
        folder = options.data_dir if options.data_dir is not None else source["data_dir"]
        train, holdout = split_holdout(get_dataset(source["name"], folder, "train"), source["holdout"],
                                       seed=source["seed"])
        preprocessing = Preprocessing.of(train)
        picked = np.sort(np.random.default_rng(options.seed).choice(len(train), options.bn_images, replace=False))
        bn = train.subset(picked, f"{train.name}-bn")
        dataset = build_accuracy_dataset(net, bn, holdout, preprocessing, options.subnets,
                                         run / f"zoo-{options.name}" / "accuracy_dataset", seed=options.seed,
                                         rank=launch.rank, world_size=launch.world_size,
                                         progress=options.progress and launch.is_main, sampling="stratified-macs",
                                         engine=options.engine)
        root = Path(options.root) if options.root else zoo_root()
        if not launch.is_main:
            return root / options.name
        predictor = AccuracyPredictor(space)
        report = predictor.fit(dataset.codes, dataset.accuracies, seed=options.seed)
        shipped, _ = load_eval_data(SHIPPED_SOURCE, preprocessing=preprocessing)  # the supernet's own mean/std
        shipped_rows = _reference_rows(net, shipped.calibration, shipped.test, shipped.preprocessing, options.engine)
        macs = op_cost_predictor(space, "macs").predict(dataset.codes)
        predictor_meta = {
            "n_subnets": len(dataset), "n_train": report["n_train"], "n_val": report["n_val"],
            "weight_decay": report["weight_decay"],
            "sampling": "evenly over log-MACs (smallest and largest at every resolution, then 20 bands in turn)",
            "evaluation": f"the {len(holdout):,}-image validation split, BN recalibrated on {len(bn):,} training images",
            "macs_range_m": [float(macs.min()), float(macs.max())], "val": report["val"], "train": report["train"],
            "subnet_seconds": round(dataset.subnet_seconds, 1), "machine": _machine(launch.world_size), "engine": options.engine,
            "accuracy_range": [float(dataset.accuracies.min()), float(dataset.accuracies.max())],
        }
        return _write_entry(options, root, run, net, config, results, predictor, predictor_meta, dataset,
                            shipped_rows, len(shipped.test), len(train), len(holdout), started)


def _machine(world_size: int) -> str:
    from ..latency.targets.base import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores, {world_size} process(es)"


def _training_record(options: BuildOptions, run: Path, config: dict, results: dict) -> dict[str, Any]:
    opts = config["options"]
    argv = opts.get("extra", {}).get("argv") or ["train"]
    world = int(config.get("world_size", 1))
    command = (f"torchrun --nproc-per-node {world} -m hwnas " if world > 1 else "hwnas ") + " ".join(argv)
    segments = read_json(run / "segments.json") if (run / "segments.json").exists() else []
    bench = read_json(run / "bench.json") if (run / "bench.json").exists() else {}
    commit = options.commit
    if commit is None and (run / "COMMIT.txt").exists():
        commit = (run / "COMMIT.txt").read_text().split()[0]
    phases = [{"name": p["name"], "epochs": p.get("epochs", 0)} for p in config["schedule"]]
    return {
        "command": command, "seed": opts["seed"], "commit": commit or "unknown", "torch": config.get("torch"),
        "world_size": world, "schedule": opts["schedule"], "phases": phases, "epochs": opts.get("epochs"),
        "steps": results["steps"], "batch_size": opts["batch_size"],
        "wall_s": float(bench.get("wall_s", results["wall_s"])),
        "machines": sorted({seg["measured_on"] for seg in segments}) or [_machine(world)],
        "segments": len(segments) or 1, "record": "training/",
        "reproduce": options.reproduce or command,
    }


def _write_entry(options: BuildOptions, root: Path, run: Path, net: Any, config: dict, results: dict,
                 predictor: AccuracyPredictor, predictor_meta: dict, dataset: Any, shipped_rows: list[dict],
                 shipped_test: int, n_train: int, n_val: int, started: float) -> Path:
    space = net.space
    final = root / options.name
    work = root / f".{options.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    (work / "training").mkdir(parents=True)
    extra = supernet_extra(run / "supernet.safetensors")
    extra.update({"training_data": extra.get("data", config["data"]), "data": SHIPPED_SOURCE, "zoo": options.name})
    save_supernet(net.cpu(), work / "supernet.safetensors", extra=extra)
    predictor.save(work / "accuracy_predictor.safetensors")
    MeasuredAccuracies(dataset.codes, dataset.accuracies).save(work / "accuracy_dataset.jsonl", space)
    for name in RECORD_FILES:
        if (run / name).exists():
            shutil.copyfile(run / name, work / "training" / name)
    test = [dict(row, stderr=round(_stderr(row["test_acc"], results["dataset"]["test"]), 4))
            for row in results["subnets"]]
    files = {key: {"path": path, "sha256": sha256_of(work / path), "bytes": (work / path).stat().st_size}
             for key, path in (("supernet", "supernet.safetensors"), ("accuracy_predictor", "accuracy_predictor.safetensors"),
                               ("accuracy_dataset", "accuracy_dataset.jsonl"))}
    prep = config["preprocessing"]
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": options.name,
        "summary": options.summary or f"`{space.name}` supernet trained by progressive shrinking on {config['data']['name']}.",
        "space": space.name, "space_hash": space.content_hash, "num_classes": net.num_classes,
        "classes": list(config["classes"]), "precision": "fp32 (float32 weights and BatchNorm statistics)",
        "input": {"layout": "NCHW float32 RGB, x/255 then (x - mean)/std per channel", "mean": prep["mean"],
                  "std": prep["std"], "resolutions": list(space.resolutions),
                  "default_resolution": int(space.resolutions[len(space.resolutions) // 2])},
        "files": files,
        "data": {"dataset": config["data"]["name"], "train_images": n_train, "validation_images": n_val,
                 "test_images": results["dataset"]["test"], "holdout": config["data"]["holdout"],
                 "seed": config["data"]["seed"],
                 "description": f"Trained on {n_train:,} CIFAR-10 training images at random resolutions of the space "
                                f"(pad-4 crop and flip), distilled in place from the largest subnet."},
        "accuracy": {"test": test, "test_images": results["dataset"]["test"],
                     "bn_recalibration": f"{results['dataset']['holdout_bn']:,} held-out training images",
                     "shipped_test": shipped_rows, "shipped_test_images": shipped_test,
                     "shipped_bn_recalibration": f"BN recalibrated on {SHIPPED_SOURCE['bn_images']:,} of the shipped "
                                                 f"training images, counted on {options.engine}"},
        "predictor": predictor_meta,
        "training": _training_record(options, run, config, results),
        "build": {"command": "hwnas zoo build", "seconds": round(time.perf_counter() - started, 1),
                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }
    write_json_atomic(work / MANIFEST, meta)
    write_text_atomic(work / "MODEL_CARD.md", model_card(meta))
    if final.exists():
        old = root / f".{options.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        work.rename(final)
        shutil.rmtree(old)
    else:
        work.rename(final)
    return final
