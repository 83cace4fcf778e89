"""The accuracy dataset: (arch, holdout accuracy) pairs measured on a trained supernet.

``n`` archs are drawn with a seed, so the list is the same every time: ``stratified-macs`` (the default)
spreads them evenly over log-MACs, from the smallest subnet to the largest, which a uniform draw does not
(uniform choices pile up in the middle and leave the extremes, where budgets often fall, nearly empty);
``uniform`` draws every choice and resolution uniformly. Each is extracted, its BatchNorm recalibrated,
and its top-1 accuracy measured on the holdout images (:func:`hwnas.eval.subnet_accuracy`). Results go to a journal per rank —
``journal-rank<r>.jsonl`` in the dataset folder — line by line, so a killed build resumes where it
stopped, and under ``torchrun`` the ranks split the archs (rank ``r`` takes every ``world``-th one).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.datasets import ImageDataset
from ..eval import Preprocessing, barrier, subnet_accuracy
from ..journal import Journal
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.base import SearchSpace
from .costs import op_cost_predictor

SAMPLINGS = ("stratified-macs", "uniform")
POOL = 100_000   # candidates a stratified draw picks from: fixed, so that any n takes a prefix of one order
BINS = 20        # equal-width log-MACs bins between the space's smallest and largest subnet


@dataclass(frozen=True)
class AccuracyDataset:
    """Measured pairs: int32 codes ``[N, S]`` and accuracies ``[N]`` in draw order."""

    codes: np.ndarray
    accuracies: np.ndarray
    seconds: float               # wall time of this call (near zero when the journals already held everything)
    subnet_seconds: float = 0.0  # the journaled time of every measurement, summed over subnets and resumes

    def __len__(self) -> int:
        return len(self.accuracies)


def _fingerprint(supernet: OFAMobileNetV3) -> str:
    sha = hashlib.sha256()
    for name, tensor in sorted(supernet.state_dict().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()[:16]


def _images_id(dataset: ImageDataset) -> str:
    return hashlib.sha256(dataset.images.tobytes() + dataset.labels.tobytes()).hexdigest()[:16]


def stratified_codes(space: SearchSpace, n: int, seed: int = 0) -> np.ndarray:
    """``n`` archs as codes ``[n, S]``, spread evenly over log-MACs: first the smallest and the largest subnet at
    every resolution (a uniform pool never reaches them), then a seeded pool of ``POOL`` uniform archs binned
    into ``BINS`` equal-width log-MACs bins between those extremes, the bins taken in turn (each in a seeded
    random order; an exhausted bin is skipped). The order does not depend on ``n``: a larger ``n`` extends a
    smaller one's list."""
    if n < 1 or n > POOL:
        raise ValueError(f"n={n} must be in [1, {POOL}]")
    rng = np.random.default_rng(seed)
    pool = space.sample_codes(POOL, rng)
    macs = np.log(op_cost_predictor(space, "macs").predict(pool))
    low, high = (np.log(space.macs(a) / 1e6) for a in (space.min_arch(), space.max_arch()))
    bins = np.clip(((macs - low) / (high - low) * BINS).astype(np.int64), 0, BINS - 1)
    members = [rng.permutation(np.flatnonzero(bins == b)) for b in range(BINS)]
    order = [m[i] for i in range(max(len(m) for m in members)) for m in members if i < len(m)]
    extremes = space.encode([pick(r) for r in space.resolutions for pick in (space.min_arch, space.max_arch)])
    return np.concatenate([extremes, pool[np.array(order, dtype=np.int64)]])[:n]


def draw_codes(space: SearchSpace, n: int, seed: int, sampling: str) -> np.ndarray:
    """The accuracy dataset's archs: :func:`stratified_codes` or ``n`` uniform archs from the seed."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling={sampling!r}; choose one of {list(SAMPLINGS)}")
    if sampling == "uniform":
        return space.sample_codes(n, np.random.default_rng(seed))
    return stratified_codes(space, n, seed)


def build_accuracy_dataset(supernet: OFAMobileNetV3, calibration: ImageDataset, evaluation: ImageDataset,
                           preprocessing: Preprocessing, n: int, folder: str | Path, seed: int = 0,
                           rank: int = 0, world_size: int = 1, progress: bool = True,
                           sampling: str = "stratified-macs", engine: str = "torch") -> AccuracyDataset:
    """Measure ``n`` seeded archs (this rank's share; ``sampling`` says how they are drawn), resuming from the
    journals in ``folder``. ``engine`` counts top-1 in torch or on onnxruntime (:func:`hwnas.eval.subnet_accuracy`).

    Every rank returns the full dataset once all ranks have finished (they meet at a barrier).
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    space = supernet.space
    folder = Path(folder)
    codes = draw_codes(space, n, seed, sampling)
    # n is not part of the run's identity: the seed draws the same archs first for any n, so a dataset
    # can grow (or be cut) and reuse what was measured
    header = {"kind": "accuracy-dataset", "space_hash": space.content_hash, "supernet": _fingerprint(supernet),
              "seed": seed, "calibration": _images_id(calibration), "evaluation": _images_id(evaluation),
              "preprocessing": preprocessing.to_dict()}
    if sampling != "uniform":  # journals written before stratified sampling existed hold uniform draws
        header["sampling"] = sampling
    journal = Journal(folder / f"journal-rank{rank}.jsonl", header)
    done = _measured(folder, header)
    barrier()  # every rank has read what exists before any rank appends
    mine = [i for i in range(rank, n, world_size) if i not in done]
    archs = space.decode(codes[mine]) if mine else []
    start = time.perf_counter()
    was_training = supernet.training
    supernet.eval()
    for index, arch in tqdm(list(zip(mine, archs)), desc="accuracy dataset", unit="arch", disable=not progress):
        began = time.perf_counter()
        accuracy = subnet_accuracy(supernet, arch, calibration, evaluation, preprocessing, engine=engine)
        journal.append(str(index), 0, {"arch": arch.to_dict(), "accuracy": accuracy,
                                       "seconds": round(time.perf_counter() - began, 3)})
    supernet.train(was_training)
    barrier()
    done = _measured(folder, header)
    missing = [i for i in range(n) if i not in done]
    if missing:
        raise RuntimeError(f"{folder}: {len(missing)} archs unmeasured after every rank finished (first: {missing[0]})")
    measured = [done[i] for i in range(n)]  # entries beyond n (an earlier, larger n) are kept but not used
    for i, (arch, _, _) in enumerate(measured):
        if space.encode(arch)[0].tolist() != codes[i].tolist():
            raise ValueError(f"{folder}: journal entry {i} holds another arch than this seed draws")
    return AccuracyDataset(codes, np.array([a for _, a, _ in measured]), time.perf_counter() - start,
                           sum(t for _, _, t in measured))


def _measured(folder: Path, header: dict) -> dict[int, tuple[Arch, float, float]]:
    """Every arch measured so far by any rank's journal (each journal checked against ``header``), with its
    accuracy and the seconds its measurement took."""
    measured: dict[int, tuple[Arch, float, float]] = {}
    for path in sorted(folder.glob("journal-rank*.jsonl")):
        for (key, _), record in Journal(path, header, writable=False).records.items():
            measured[int(key)] = (Arch.from_dict(record["arch"]), float(record["accuracy"]),
                                  float(record.get("seconds", 0.0)))
    return measured
