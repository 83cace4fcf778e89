"""Train one fixed subnet from scratch: the baseline that progressive shrinking has to beat.

Same recipe as a supernet phase — SGD Nesterov, cosine LR with warm-up, label smoothing, no weight
decay on BatchNorm and biases, the same augmentation — but one architecture at its own resolution,
no teacher and fresh weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..data.transforms import TrainTransform, resize
from ..nn.static_blocks import StaticSubnet
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.mbv3 import MobileNetV3Space
from .allocator import keep_freed_memory
from .evaluate import Preprocessing
from .trainer import cosine_lr, param_groups


@dataclass(frozen=True)
class StandaloneResult:
    subnet: StaticSubnet
    steps: int
    wall_s: float
    losses: list[float]


def train_standalone(space: MobileNetV3Space, arch: Arch, train: ImageDataset, preprocessing: Preprocessing,
                     steps: int, lr: float, batch_size: int = 128, warmup_steps: int = 0, weight_decay: float = 3e-5,
                     label_smoothing: float = 0.1, crop_padding: int = 4, seed: int = 0,
                     show_progress: bool = True) -> StandaloneResult:
    """``steps`` SGD steps on ``arch`` alone: fresh weights initialised as the supernet's, inputs resized to ``arch.r``."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    arch = space.validate(arch)
    keep_freed_memory()
    torch.manual_seed(seed)
    subnet = OFAMobileNetV3(space, zero_init_residual=True).extract(arch)  # fresh init, cut to this arch
    subnet.train()
    augmentation = TrainTransform(preprocessing.mean, preprocessing.std, padding=crop_padding)
    loader = BatchLoader(train, batch_size, seed=seed, transform=augmentation)
    optimizer = torch.optim.SGD(param_groups(subnet, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    losses: list[float] = []
    start = time.perf_counter()
    with tqdm(total=steps, desc=f"standalone r={arch.r}", unit="step", disable=not show_progress) as bar:
        while len(losses) < steps:
            for images, labels in loader:
                if len(losses) >= steps:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(lr, len(losses), steps, warmup_steps)
                images = resize(images, arch.r).contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(subnet(images), labels, label_smoothing=label_smoothing)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.update(1)
    return StandaloneResult(subnet.eval(), len(losses), time.perf_counter() - start, losses)
