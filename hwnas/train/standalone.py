"""Train one fixed subnet from scratch: the baseline that progressive shrinking has to beat.

Same recipe as a supernet phase — SGD Nesterov, cosine LR with warm-up, label smoothing, no weight
decay on BatchNorm and biases, the same augmentation — but one architecture at its own resolution,
no teacher and fresh weights.

A baseline as long as the supernet run (hours for the largest subnet on a CPU) must survive a kill:
with a checkpoint folder it saves weights, momentum, loader position, augmentation generator, RNG and
the losses so far (the trainer's format: safetensors + JSON, atomic, SHA-256 checked), and a later
call with the same settings continues from there with the batches and updates an uninterrupted run
would have made.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..data.transforms import TrainTransform, resize
from ..eval import Preprocessing
from ..nn.static_blocks import StaticSubnet
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.mbv3 import MobileNetV3Space
from .allocator import keep_freed_memory
from .state import commit_state, load_momentum, load_state, momentum_tensors, save_rank_state
from .trainer import cosine_lr, param_groups


@dataclass(frozen=True)
class StandaloneResult:
    subnet: StaticSubnet
    steps: int  # optimiser steps taken so far, over every call that resumed this baseline
    wall_s: float  # their summed wall time (steps only, all segments)
    losses: list[float]
    finished: bool  # False when ``max_steps`` stopped the call early
    segments: int = 1  # calls that trained part of it (1 = never resumed; 0 = all of it was in the checkpoint)


@dataclass(frozen=True)
class _Recipe:
    """What a checkpoint must match for a resume to continue the same baseline."""
    space_hash: str
    arch: dict[str, Any]
    steps: int
    lr: float
    batch_size: int
    warmup_steps: int
    weight_decay: float
    label_smoothing: float
    crop_padding: int
    seed: int
    train_images: int

    def identity(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.__dict__))  # as a JSON round trip returns it


def train_standalone(space: MobileNetV3Space, arch: Arch, train: ImageDataset, preprocessing: Preprocessing,
                     steps: int, lr: float, batch_size: int = 128, warmup_steps: int = 0, weight_decay: float = 3e-5,
                     label_smoothing: float = 0.1, crop_padding: int = 4, seed: int = 0,
                     show_progress: bool = True, checkpoint_dir: str | Path | None = None,
                     checkpoint_every: int = 500, max_steps: int | None = None) -> StandaloneResult:
    """``steps`` SGD steps on ``arch`` alone: fresh weights initialised as the supernet's, inputs resized to ``arch.r``.

    With ``checkpoint_dir``: a checkpoint every ``checkpoint_every`` steps and at the end; if the folder
    already holds one of this recipe, training continues from it (another recipe's is a ValueError naming
    the difference). ``max_steps`` ends this call once that many steps are done in all (checkpointed), for
    work split into sittings; the result then says ``finished=False``.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every={checkpoint_every} must be >= 1")
    arch = space.validate(arch)
    recipe = _Recipe(space.content_hash, arch.to_dict(), steps, lr, batch_size, warmup_steps, weight_decay,
                     label_smoothing, crop_padding, seed, len(train))
    keep_freed_memory()
    torch.manual_seed(seed)
    subnet = OFAMobileNetV3(space, zero_init_residual=True).extract(arch)  # fresh init, cut to this arch
    subnet.train()
    augmentation = TrainTransform(preprocessing.mean, preprocessing.std, padding=crop_padding)
    loader = BatchLoader(train, batch_size, seed=seed, transform=augmentation)
    optimizer = torch.optim.SGD(param_groups(subnet, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    losses: list[float] = []
    elapsed, earlier_segments = 0.0, 0
    if folder is not None and (folder / "state.json").exists():
        losses, elapsed, earlier_segments = _resume(folder, recipe, subnet, optimizer, loader)
    resumed_at = len(losses)
    stop = steps if max_steps is None else min(steps, max_steps)
    with tqdm(total=steps, initial=len(losses), desc=f"standalone r={arch.r}", unit="step",
              disable=not show_progress) as bar:
        while len(losses) < stop:
            for images, labels in loader:
                start = time.perf_counter()
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(lr, len(losses), steps, warmup_steps)
                images = resize(images, arch.r).contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(subnet(images), labels, label_smoothing=label_smoothing)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                elapsed += time.perf_counter() - start
                bar.update(1)
                done = len(losses) >= stop
                if folder is not None and (done or len(losses) % checkpoint_every == 0):
                    _save(folder, recipe, subnet, optimizer, loader, losses, elapsed, earlier_segments + 1)
                if done:
                    break
    segments = earlier_segments + (len(losses) > resumed_at)
    return StandaloneResult(subnet.eval(), len(losses), elapsed, losses, len(losses) >= steps, segments)


def _save(folder: Path, recipe: _Recipe, subnet: StaticSubnet, optimizer: torch.optim.SGD, loader: BatchLoader,
          losses: list[float], elapsed: float, segments: int) -> None:
    step = len(losses)
    save_rank_state(folder, step, 0, {"loader": loader.state_dict(), "torch_rng": torch.get_rng_state()})
    tensors = {f"model.{k}": v for k, v in subnet.state_dict().items()}
    tensors.update(momentum_tensors(optimizer))
    meta = {"recipe": recipe.identity(), "losses": losses, "elapsed_s": elapsed, "segments": segments}
    commit_state(folder, step, 1, tensors, meta)


def _resume(folder: Path, recipe: _Recipe, subnet: StaticSubnet, optimizer: torch.optim.SGD,
            loader: BatchLoader) -> tuple[list[float], float, int]:
    """Restore the checkpoint in ``folder`` into the fresh objects; (losses so far, their seconds, sittings)."""
    tensors, meta, rank_state = load_state(folder, 0)
    saved, mine = meta.get("recipe", {}), recipe.identity()
    differs = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
    if differs:
        detail = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differs.items())
        raise ValueError(f"{folder}: holds another baseline's checkpoint ({detail}); "
                         f"use another folder or the same settings")
    subnet.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    device = next(subnet.parameters()).device
    load_momentum(optimizer, tensors, device)
    loader.load_state_dict(rank_state["loader"])
    torch.set_rng_state(rank_state["torch_rng"])
    return [float(x) for x in meta["losses"]], float(meta["elapsed_s"]), int(meta["segments"])
