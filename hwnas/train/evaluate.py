"""Accuracy of one subnet taken from a supernet: extract it, recalibrate its BatchNorm, count correct top-1.

A subnet's weights are shared, but the supernet's running statistics were accumulated over many
different subnets; OFA re-estimates them on a few thousand training images before every evaluation,
and so does :func:`subnet_accuracy` (on images the caller sets aside: hwnas uses the holdout split).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..data.transforms import EvalTransform
from ..nn.bn import recalibrate_bn
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.base import SearchSpace


@dataclass(frozen=True)
class Preprocessing:
    """How images are normalised before the network: per-channel mean and std of ``x / 255``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, dataset: ImageDataset) -> Preprocessing:
        """Per-channel mean and std of ``dataset``, exact from 256-bin histograms, rounded to 4 decimals."""
        pixels = dataset.images.reshape(-1, dataset.images.shape[-1])
        counts = np.zeros((pixels.shape[1], 256), dtype=np.int64)
        for start in range(0, len(pixels), 1 << 20):  # chunks: bincount copies its input to intp
            chunk = pixels[start:start + (1 << 20)]
            for channel in range(pixels.shape[1]):
                counts[channel] += np.bincount(chunk[:, channel], minlength=256)
        values = np.arange(256) / 255.0
        mean = counts @ values / len(pixels)
        std = np.sqrt(np.maximum(counts @ values**2 / len(pixels) - mean**2, 1e-6))
        return cls(tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std))

    def transform(self, resolution: int | None = None) -> EvalTransform:
        return EvalTransform(self.mean, self.std, resolution)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def reference_subnets(space: SearchSpace) -> dict[str, Arch]:
    """The smallest subnet (at the lowest resolution), the middle one (middle choice of every gene and
    of resolution) and the largest (at the highest resolution): the three points of the results table."""
    def middle(values: Sequence) -> object:
        return values[len(values) // 2]

    mid = Arch(ks=[middle(space.ks)] * space.num_blocks, e=[middle(space.expand)] * space.num_blocks,
               d=[middle(space.depth)] * space.num_stages, r=middle(space.resolutions))
    return {"smallest": space.min_arch(), "middle": space.validate(mid), "largest": space.max_arch()}


@torch.no_grad()
def accuracy(model: nn.Module, evaluation: ImageDataset, preprocessing: Preprocessing, resolution: int,
             batch_size: int = 250) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``evaluation`` normalised and resized to ``resolution``."""
    if len(evaluation) == 0:
        raise ValueError("accuracy: the evaluation set is empty")
    device = next(model.parameters()).device
    correct = 0
    loader = BatchLoader(evaluation, batch_size, shuffle=False, transform=preprocessing.transform(resolution),
                         drop_last=False)
    for images, labels in loader:
        logits = model(images.to(device).contiguous(memory_format=torch.channels_last))
        correct += int((logits.argmax(dim=1).cpu() == labels).sum())
    return correct / len(evaluation)


@torch.no_grad()
def subnet_accuracy(supernet: OFAMobileNetV3, arch: Arch, calibration: ImageDataset, evaluation: ImageDataset,
                    preprocessing: Preprocessing, batch_size: int = 250) -> float:
    """Top-1 accuracy of ``arch`` on ``evaluation`` after recalibrating BatchNorm on ``calibration``.

    Images are normalised and resized to ``arch.r`` exactly as in training; the supernet is untouched
    (the subnet is an extracted copy). Runs on the supernet's device.
    """
    if len(evaluation) == 0:
        raise ValueError("subnet_accuracy: the evaluation set is empty")
    device = next(supernet.parameters()).device
    subnet = supernet.extract(arch).to(device)
    calibrate = BatchLoader(calibration, batch_size, shuffle=False, transform=preprocessing.transform(arch.r),
                            drop_last=False)
    recalibrate_bn(subnet, ((x.contiguous(memory_format=torch.channels_last), y) for x, y in calibrate), len(calibrate))
    return accuracy(subnet.eval(), evaluation, preprocessing, arch.r, batch_size)
