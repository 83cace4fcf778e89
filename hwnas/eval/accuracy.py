"""Accuracy of one subnet taken from a supernet: extract it, recalibrate its BatchNorm, count correct top-1.

A subnet's weights are shared, but the supernet's running statistics were accumulated over many
different subnets; OFA re-estimates them on a few thousand training images before every evaluation,
and so does :func:`subnet_accuracy` (on images the caller sets aside: hwnas uses the holdout split).

``engine="onnxruntime"`` counts top-1 on the recalibrated subnet written as the ONNX file export would ship
(hwnas's writer, batch axis dynamic) and run on onnxruntime's CPU provider, one thread: on tiny-mbv3 at
r40 that took 2.1 ms per image against torch's 5.2 ms (channels-last, batch 250, same core), which is what
makes a 1,000-subnet accuracy dataset on a 2-core machine take half an hour instead of more than one.
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

ENGINES = ("torch", "onnxruntime")


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


def onnx_accuracy(model: nn.Module, evaluation: ImageDataset, preprocessing: Preprocessing, resolution: int,
                  batch_size: int = 250) -> float:
    """:func:`accuracy` of ``model`` (eval mode, on the CPU) written to ONNX and run on onnxruntime, 1 thread."""
    import onnxruntime as ort

    from ..formats.onnx_writer import module_to_onnx

    if len(evaluation) == 0:
        raise ValueError("accuracy: the evaluation set is empty")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model_bytes = module_to_onnx(model.cpu(), (1, 3, resolution, resolution), dynamic_batch=True)
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = 0
    loader = BatchLoader(evaluation, batch_size, shuffle=False, transform=preprocessing.transform(resolution),
                         drop_last=False)
    for images, labels in loader:
        logits = session.run(None, {name: images.numpy()})[0]
        correct += int((logits.argmax(axis=1) == labels.numpy()).sum())
    return correct / len(evaluation)


@torch.no_grad()
def subnet_accuracy(supernet: OFAMobileNetV3, arch: Arch, calibration: ImageDataset, evaluation: ImageDataset,
                    preprocessing: Preprocessing, batch_size: int = 250, engine: str = "torch") -> float:
    """Top-1 accuracy of ``arch`` on ``evaluation`` after recalibrating BatchNorm on ``calibration``.

    Images are normalised and resized to ``arch.r`` exactly as in training; the supernet is untouched
    (the subnet is an extracted copy). BN recalibration runs on the supernet's device; the count runs there
    too (``engine="torch"``) or on onnxruntime's CPU provider (``"onnxruntime"``, see the module docstring).
    """
    if len(evaluation) == 0:
        raise ValueError("subnet_accuracy: the evaluation set is empty")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}; choose one of {list(ENGINES)}")
    device = next(supernet.parameters()).device
    subnet = supernet.extract(arch).to(device)
    calibrate = BatchLoader(calibration, batch_size, shuffle=False, transform=preprocessing.transform(arch.r),
                            drop_last=False)
    recalibrate_bn(subnet, ((x.contiguous(memory_format=torch.channels_last), y) for x, y in calibrate), len(calibrate))
    if engine == "onnxruntime":
        return onnx_accuracy(subnet.eval(), evaluation, preprocessing, arch.r, batch_size)
    return accuracy(subnet.eval(), evaluation, preprocessing, arch.r, batch_size)
