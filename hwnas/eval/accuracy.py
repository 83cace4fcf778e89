"""Accuracy of one subnet taken from a supernet: extract it, recalibrate its BatchNorm, count correct top-1.

A subnet's weights are shared, but the supernet's running statistics were accumulated over many
different subnets; OFA re-estimates them on a few thousand training images before every evaluation,
and so does :func:`subnet_accuracy` (on images the caller sets aside: hwnas uses the holdout split).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..nn.bn import recalibrate_bn
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.base import SearchSpace
from .preprocessing import Preprocessing


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
