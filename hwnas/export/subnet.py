"""The subnet to deploy: taken out of a trained supernet with its own weights and BatchNorm re-estimated.

A supernet's running statistics were accumulated over many subnets; before a subnet is frozen into a file
its BN statistics are recalibrated on training images (the holdout the training run set aside, at the
subnet's resolution), exactly as every accuracy hwnas reports was measured.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.loader import BatchLoader
from ..eval import EvalData, Preprocessing, checkpoint_eval_data
from ..nn.bn import recalibrate_bn
from ..nn.checkpoint import load_supernet, supernet_extra
from ..nn.static_blocks import StaticSubnet
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.base import SearchSpace


@dataclass
class PreparedSubnet:
    """An extracted, BN-recalibrated subnet in eval mode, with what inference needs to feed it."""

    space: SearchSpace
    arch: Arch
    module: StaticSubnet
    preprocessing: Preprocessing
    classes: list[str]
    data: EvalData

    @property
    def resolution(self) -> int:
        return int(self.arch.r)

    def inputs_nchw(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """uint8 NHWC images → the float32 NCHW batch the network takes (normalised, resized to ``r``)."""
        transform = self.preprocessing.transform(self.resolution)
        chunks = [transform(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, 3, self.resolution, self.resolution), np.float32)

    @torch.no_grad()
    def forward(self, inputs_nchw: np.ndarray, batch_size: int = 250) -> np.ndarray:
        """PyTorch's float32 logits for already preprocessed NCHW inputs."""
        outputs = [self.module(torch.from_numpy(inputs_nchw[i:i + batch_size])).numpy()
                   for i in range(0, len(inputs_nchw), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.classes)), np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """PyTorch's float32 logits for uint8 NHWC ``images``: the reference every exported file is checked against."""
        return self.forward(self.inputs_nchw(images))


def load_arch(space: SearchSpace, source: str | os.PathLike[str] | dict[str, Any] | Arch) -> Arch:
    """An arch from a dict, an ``Arch`` or a JSON file holding either ``{ks, e, d, r}`` or ``{"arch": {...}}``."""
    if isinstance(source, Arch):
        return space.validate(source)
    if isinstance(source, dict):
        data = source
    else:
        try:
            with open(source, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError(f"arch file {source} does not exist") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"arch file {source} is not valid JSON: {error}") from None
    if isinstance(data, dict) and "arch" in data and isinstance(data["arch"], dict):
        data = data["arch"]
    return space.arch(data)


def prepare_subnet(supernet: str | os.PathLike[str] | OFAMobileNetV3, arch: Arch | dict[str, Any] | str,
                   data_dir: str | None = None, data: dict[str, Any] | None = None,
                   classes: list[str] | None = None) -> PreparedSubnet:
    """Extract ``arch`` from ``supernet`` (a checkpoint path or a model) and recalibrate its BatchNorm.

    The data comes from the training run the checkpoint recorded (``data_dir`` overrides its folder); a model
    passed in memory needs ``data`` (a ``data_source`` dict). Runs on the CPU: export is a CPU job.
    """
    if isinstance(supernet, OFAMobileNetV3):
        model, extra = supernet.cpu(), {}
        if data is None:
            raise ValueError("prepare_subnet: a supernet passed in memory needs data= (where its training data is)")
    else:
        model, extra = load_supernet(supernet, "cpu"), supernet_extra(supernet)
    space = model.space
    arch = load_arch(space, arch)
    eval_data, train = checkpoint_eval_data(extra, data_dir, data)
    names = list(classes or extra.get("classes") or train.classes)
    module = model.eval().extract(arch)
    loader = BatchLoader(eval_data.calibration, 250, shuffle=False,
                         transform=eval_data.preprocessing.transform(arch.r), drop_last=False)
    recalibrate_bn(module, iter(loader), len(loader))
    return PreparedSubnet(space, arch, module.eval(), eval_data.preprocessing, names, eval_data)
