"""The progressive-shrinking trainer: OFA training with distillation, exact resume and DDP.

Each step samples one resolution and resizes the batch to it (the sandwich bounds may take the space's
extreme resolutions instead), runs the frozen teacher (a copy of the full network taken when the teacher
phase ends) once at the step's highest resolution, unless the phase distils from the step's own largest
subnet, and runs the phase's ``subnets_per_step`` subnets — drawn from the phase's choices by a seeded
sampler — on the batch. The loss is the mean over those subnets of label-smoothed cross-entropy plus
``kd_ratio`` × soft-target cross-entropy against the teacher, so one backward accumulates every subnet's
gradient (scaled by 1 / subnets); one SGD (Nesterov) step follows, with a per-step cosine LR inside each
phase and a fresh optimiser per phase (OFA restarts each phase; reorganising channels also invalidates the
old momentum).

Distributed (``torchrun``): the subnets of a step run inside one forward of :class:`SubnetsForward`
wrapped in ``DistributedDataParallel``, so DDP sees one graph per step, reduces every gradient once
and (``find_unused_parameters``) knows which weights no subnet of the step touched. Every rank draws
the same subnets and resolution from the shared seeded sampler, so that set is the same on all ranks;
DDP broadcasts rank 0's BatchNorm statistics at each forward.

A loader is anything with ``__iter__`` yielding ``(images float32 NCHW, labels int64)``, ``__len__``
(batches per epoch) and ``state_dict()``/``load_state_dict()``; iterating to the end advances its
epoch, and ``iter()`` after ``load_state_dict`` continues exactly where the saved state stood.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..atomic import write_text_atomic
from ..data.transforms import resize
from ..eval import barrier
from ..nn.elastic import ElasticDepthwiseConv, ElasticPointwiseConv
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from .schedule import Phase
from .state import commit_state, load_momentum, load_state, momentum_tensors, save_rank_state

LOG_FIELDS = ("phase", "epoch", "step", "phase_step", "lr", "loss", "seconds")
PhaseEndHook = Callable[[Phase, OFAMobileNetV3], None]


class BatchLoader(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every phase (a phase brings its own epochs, LR and choices)."""

    seed: int = 0
    weight_decay: float = 3e-5
    momentum: float = 0.9
    label_smoothing: float = 0.1
    lr_scale: float = 1.0                   # multiplies every phase's LR (linear scaling with the batch)
    checkpoint_every: int = 500             # steps; checkpoints are also written at every phase end
    max_steps_per_phase: int | None = None  # smoke runs: cap each phase (its cosine spans the cap)
    channels_last: bool = True              # NHWC activations: ~2× faster training on CPU here


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (OFA's ``cross_entropy_loss_with_soft_target``)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``base`` to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: conv and linear weights decay; BatchNorm, biases and kernel matrices do not."""
    decay_ids = {id(m.weight) for m in model.modules()
                 if isinstance(m, (nn.Conv2d, nn.Linear, ElasticPointwiseConv, ElasticDepthwiseConv))}
    decay = [p for p in model.parameters() if id(p) in decay_ids]
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    return [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": rest, "weight_decay": 0.0, "name": "no_decay"}]


class SubnetsForward(nn.Module):
    """Runs several subnets of one supernet on the same batch in a single forward: one graph per step."""

    def __init__(self, supernet: OFAMobileNetV3) -> None:
        super().__init__()
        self.supernet = supernet

    def forward(self, images: dict[int, torch.Tensor], archs: Sequence[Arch]) -> list[torch.Tensor]:
        """Each subnet's logits on the batch resized to its own resolution (``images`` maps resolution to batch)."""
        outputs = []
        for arch in archs:
            self.supernet.set_active(arch)
            outputs.append(self.supernet(images[arch.r]))
        return outputs


class Trainer:
    """Runs a schedule of phases on ``model``, writing ``out/log.csv`` and ``out/checkpoint/``.

    ``resume=True`` restores model, teacher, optimiser momentum, sampler, torch RNG and loader state
    from ``out/checkpoint`` and continues as if never interrupted. Under ``torch.distributed`` (already
    initialised) every rank must build the same model and a loader over its own shard; rank 0 writes
    the log and the shared checkpoint, every rank its own loader and RNG state. ``on_phase_end`` runs
    on rank 0 after each phase (evaluation for the curves), before the phase's checkpoint.
    """

    def __init__(self, model: OFAMobileNetV3, schedule: Sequence[Phase], loader: BatchLoader,
                 out: str | Path, config: TrainConfig = TrainConfig(), resume: bool = False,
                 show_progress: bool = True, on_phase_end: PhaseEndHook | None = None) -> None:
        self.space = model.space
        self.schedule = [phase.check(self.space) for phase in schedule]
        if not self.schedule:
            raise ValueError("the schedule has no phases")
        self.loader, self.config, self.on_phase_end = loader, config, on_phase_end
        self.out = Path(out)
        self.checkpoint_dir = self.out / "checkpoint"
        self.log_path = self.out / "log.csv"
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world_size = dist.get_world_size() if distributed else 1
        self.device = next(model.parameters()).device
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = model
        self.steps_per_epoch = len(loader)
        if self.steps_per_epoch < 1:
            raise ValueError("the loader yields no batches per epoch (dataset smaller than one batch?)")
        cap = config.max_steps_per_phase
        self.phase_steps = [p.steps(self.steps_per_epoch) if cap is None else min(cap, p.steps(self.steps_per_epoch))
                            for p in self.schedule]
        self.show_progress = show_progress and self.rank == 0
        self.rng = np.random.default_rng(config.seed)  # subnet and resolution sampler: identical on every rank
        self.teacher: OFAMobileNetV3 | None = None
        self.optimizer: torch.optim.SGD | None = None
        self.phase_index = self.phase_step = self.global_step = 0
        self.phase_started = False
        self.elapsed = 0.0
        self.losses: list[float] = []  # losses of the steps this object ran
        self._batches: Iterator | None = None
        if resume:
            self._load()
        elif (self.checkpoint_dir / "state.json").exists():
            raise ValueError(f"{self.checkpoint_dir} already holds a checkpoint; resume it or choose another output")
        elif self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "w", newline="") as handle:
                csv.writer(handle).writerow(LOG_FIELDS)
        forward = SubnetsForward(self.model)
        if self.world_size > 1:  # same starting weights everywhere (DDP broadcasts rank 0's), same teacher too
            forward = DistributedDataParallel(forward, find_unused_parameters=True)
            if self.teacher is not None:
                self._broadcast(self.teacher)
        self.forward = forward

    # --- the loop -------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.phase_index >= len(self.schedule)

    @property
    def total_steps(self) -> int:
        return sum(self.phase_steps)

    def run(self, max_steps: int | None = None) -> None:
        """Train to the end of the schedule, or stop (without checkpointing) once ``global_step`` reaches ``max_steps``."""
        self.model.train()
        while not self.finished:
            phase, total = self.schedule[self.phase_index], self.phase_steps[self.phase_index]
            if not self.phase_started:
                self._start_phase(phase)
            bar = tqdm(total=total, initial=self.phase_step, desc=f"{self.phase_index + 1}/{len(self.schedule)} {phase.name}",
                       unit="step", disable=not self.show_progress, dynamic_ncols=True)
            try:
                while self.phase_step < total:
                    if max_steps is not None and self.global_step >= max_steps:
                        return
                    start = time.perf_counter()
                    warmup = round(phase.warmup_epochs * self.steps_per_epoch)
                    lr = cosine_lr(phase.lr * self.config.lr_scale, self.phase_step, total, warmup)
                    loss = self._step(phase, self._next_batch(), lr)
                    self.elapsed += time.perf_counter() - start
                    self.phase_step += 1
                    self.global_step += 1
                    self.losses.append(loss)
                    self._log(phase, lr, loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
                    every = self.config.checkpoint_every
                    if every and self.global_step % every == 0 and self.phase_step < total:
                        self.save()
            finally:
                bar.close()
            self._end_phase(phase)

    def _start_phase(self, phase: Phase) -> None:
        if phase.kd_ratio > 0 and not phase.distil_from_largest and self.teacher is None:
            self.teacher = self._frozen_full_network()
            self.teacher.load_state_dict(self.model.state_dict())
        if phase.reorganize_before:
            self.model.reorganize_channels()
        self.optimizer = self._make_optimizer(phase)
        self.phase_started = True

    def _end_phase(self, phase: Phase) -> None:
        if self.world_size > 1:  # the next forward would do it; the hook and the checkpoint see it now
            self._broadcast(self.model, buffers_only=True)
        if self.on_phase_end is not None and self.rank == 0:
            self.on_phase_end(phase, self.model)
            self.model.train()
        barrier()
        self.phase_index += 1
        self.phase_step = 0
        self.phase_started = False
        self.save()

    def _frozen_full_network(self) -> OFAMobileNetV3:
        teacher = copy.deepcopy(self.model)
        teacher.set_active(self.space.max_arch())
        teacher.eval().requires_grad_(False)
        return teacher

    def _make_optimizer(self, phase: Phase) -> torch.optim.SGD:
        return torch.optim.SGD(param_groups(self.model, self.config.weight_decay), lr=phase.lr,
                               momentum=self.config.momentum, nesterov=True)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batches is None:
            self._batches = iter(self.loader)
        batch = next(self._batches, None)
        if batch is None:  # epoch boundary: the loader moves on to its next epoch
            self._batches = iter(self.loader)
            batch = next(self._batches, None)
            if batch is None:
                raise RuntimeError("the loader yielded no batches for a whole epoch")
        return batch

    def _step(self, phase: Phase, batch: tuple[torch.Tensor, torch.Tensor], lr: float) -> float:
        images, labels = (t.to(self.device, non_blocking=True) for t in batch[:2])
        r = int(self.space.resolutions[int(self.rng.integers(0, len(self.space.resolutions)))])
        archs = phase.step_archs(self.space, self.rng, r)
        batches = {res: resize(images, res).contiguous(memory_format=self.memory_format)
                   for res in sorted({arch.r for arch in archs})}
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        target = None
        if phase.kd_ratio > 0 and not phase.distil_from_largest:
            with torch.no_grad():  # soft targets are per image: the teacher sees the step's highest resolution
                target = F.softmax(self.teacher(batches[max(batches)]), dim=1)
        outputs = self.forward(batches, archs)
        if phase.distil_from_largest:  # step_archs puts the largest first
            target = F.softmax(outputs[0].detach(), dim=1)
        losses = []
        for logits in outputs:
            loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
            if target is not None:
                loss = loss + phase.kd_ratio * soft_cross_entropy(logits, target)
            losses.append(loss)
        loss = torch.stack(losses).mean()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _broadcast(self, module: nn.Module, buffers_only: bool = False) -> None:
        tensors = module.buffers() if buffers_only else module.state_dict().values()
        for tensor in tensors:
            dist.broadcast(tensor, 0)

    def _log(self, phase: Phase, lr: float, loss: float) -> None:
        if self.rank != 0:
            return
        with open(self.log_path, "a", newline="") as handle:
            csv.writer(handle).writerow([phase.name, (self.phase_step - 1) // self.steps_per_epoch, self.global_step,
                                         self.phase_step, f"{lr:.6g}", f"{loss:.6f}", f"{self.elapsed:.3f}"])

    # --- checkpoints ----------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this trainer (as JSON would return it)."""
        return json.loads(json.dumps({
            "space_hash": self.space.content_hash, "schedule": [p.to_dict() for p in self.schedule],
            "phase_steps": self.phase_steps, "config": asdict(self.config), "world_size": self.world_size,
        }))

    def save(self) -> None:
        """Checkpoint now; every rank must call it (each writes its own loader and RNG state)."""
        rank_state: dict[str, Any] = {"loader": self.loader.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            rank_state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        save_rank_state(self.checkpoint_dir, self.global_step, self.rank, rank_state)
        barrier()
        if self.rank == 0:
            tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            if self.teacher is not None:
                tensors.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
            if self.optimizer is not None and self.phase_started:
                tensors.update(momentum_tensors(self.optimizer))
            meta = {**self._identity(), "phase_index": self.phase_index, "phase_step": self.phase_step,
                    "global_step": self.global_step, "phase_started": self.phase_started,
                    "elapsed_s": self.elapsed, "sampler": self.rng.bit_generator.state}
            commit_state(self.checkpoint_dir, self.global_step, self.world_size, tensors, meta)
        barrier()

    def _load(self) -> None:
        tensors, meta, rank_state = load_state(self.checkpoint_dir, self.rank)
        expected = self._identity()
        for key, value in expected.items():
            if meta.get(key) != value:
                raise ValueError(f"{self.checkpoint_dir}: checkpoint {key} differs from this run's "
                                 f"({meta.get(key)!r} vs {value!r}); resume with the same settings")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        teacher = {k[8:]: v for k, v in tensors.items() if k.startswith("teacher.")}
        if teacher:
            self.teacher = self._frozen_full_network()
            self.teacher.load_state_dict(teacher)
        self.phase_index, self.phase_step = meta["phase_index"], meta["phase_step"]
        self.global_step, self.phase_started, self.elapsed = meta["global_step"], meta["phase_started"], meta["elapsed_s"]
        if self.phase_started:
            self.optimizer = self._make_optimizer(self.schedule[self.phase_index])
            load_momentum(self.optimizer, tensors, self.device)
        self.rng.bit_generator.state = meta["sampler"]
        torch.set_rng_state(rank_state["torch_rng"])
        if "cuda_rng" in rank_state and self.device.type == "cuda":
            torch.cuda.set_rng_state(rank_state["cuda_rng"], self.device)
        self.loader.load_state_dict(rank_state["loader"])
        self._batches = None
        if self.rank == 0:
            self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log rows of steps after the checkpoint (they will be run again)."""
        if not self.log_path.exists():
            with open(self.log_path, "w", newline="") as handle:
                csv.writer(handle).writerow(LOG_FIELDS)
            return
        with open(self.log_path, newline="") as handle:
            rows = list(csv.reader(handle))
        keep = [rows[0]] + [row for row in rows[1:] if len(row) == len(LOG_FIELDS) and int(row[2]) <= self.global_step]
        text = io.StringIO()
        csv.writer(text).writerows(keep)
        write_text_atomic(self.log_path, text.getvalue())
