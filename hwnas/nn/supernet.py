"""The OFA MobileNetV3 supernet: one set of weights for every subnet of a ``MobileNetV3Space``."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..space.arch import Arch
from ..space.base import RngLike
from ..space.mbv3 import MobileNetV3Space
from .elastic import ElasticMBConvBlock
from .materialize import copy_module
from .ops import init_conv_
from .static_blocks import InvertedResidual, StaticSubnet, create_op


class OFAMobileNetV3(nn.Module):
    """OFA's ``OFAMobileNetV3``: elastic kernel, expand ratio, depth and resolution.

    The fixed ops (stem, first block, head) are the static ops of the space's own signatures; each
    block slot is an :class:`ElasticMBConvBlock` sized for its largest choice. ``forward`` runs the
    active subnet (``set_active``) at whatever resolution the input has; ``extract`` returns it as a
    :class:`StaticSubnet` holding copies of the weights. ``num_classes`` defaults to the space's.
    ``zero_init_residual`` starts every residual block's last BatchNorm scale at zero, so each block
    begins as the identity (Goyal et al., 2017): on `tiny-mbv3` it lifts one epoch of CIFAR-10 training
    by several points. Off by default, which is OFA's initialisation.
    """

    def __init__(self, space: MobileNetV3Space, num_classes: int | None = None, dropout: float = 0.0,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if not isinstance(space, MobileNetV3Space):
            raise TypeError(f"OFAMobileNetV3 needs a MobileNetV3Space, got {type(space).__name__}")
        self.space = space
        self.num_classes = space.num_classes if num_classes is None else int(num_classes)
        if self.num_classes < 1:
            raise ValueError(f"num_classes={self.num_classes} must be >= 1")
        self.dropout = float(dropout)
        r = max(space.resolutions)
        (stem, first_block), head = space.fixed_signatures(r)
        head[-1] = dataclasses.replace(head[-1], out_c=self.num_classes)
        self.stem = create_op(stem)
        self.first_block = create_op(first_block)
        self.blocks = nn.ModuleList(
            ElasticMBConvBlock(space.block_signature(slot, r, max(space.ks), max(space.expand)), space.ks)
            for slot in range(space.num_blocks)
        )
        self.head = nn.Sequential(*(create_op(sig, self.dropout) for sig in head))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv_(module.weight, module.bias)
        if zero_init_residual:
            for block in (self.first_block, *self.blocks):
                if isinstance(block, InvertedResidual) and block.residual:
                    nn.init.zeros_(block.project_bn.weight)
        self.set_active(space.max_arch())

    def set_active(self, arch: Arch | dict[str, Any]) -> Arch:
        """Make ``arch`` (an Arch or OFA dict, validated) the subnet that ``forward`` runs."""
        arch = self.space.arch(arch)
        for slot, block in enumerate(self.blocks):
            block.set_active(arch.ks[slot], self.space.mid_channels(block.in_channels, arch.e[slot]))
        self.active_arch = arch
        self._active_slots = self.space.active_slots(arch)
        return arch

    def sample_active(self, rng: RngLike = None) -> Arch:
        """Activate a uniformly random subnet and return its arch."""
        return self.set_active(self.space.sample(rng))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for slot in self._active_slots:
            x = self.blocks[slot](x)
        return self.head(x)

    @torch.no_grad()
    def extract(self, arch: Arch | dict[str, Any] | None = None) -> StaticSubnet:
        """``arch`` (default: the active one) as a static subnet holding copies of its weights.

        The result is in the supernet's train/eval mode; the supernet's active subnet is unchanged.
        """
        arch = self.active_arch if arch is None else self.space.arch(arch)
        ops: list[nn.Module] = [copy_module(self.stem), copy_module(self.first_block)]
        for slot in self.space.active_slots(arch):
            block = self.blocks[slot]
            ops.append(block.to_static(arch.ks[slot], self.space.mid_channels(block.in_channels, arch.e[slot])))
        ops += [copy_module(op) for op in self.head]
        subnet = StaticSubnet(*ops)
        subnet.training = self.training  # every op was created in this mode already
        return subnet

    @torch.no_grad()
    def reorganize_channels(self) -> None:
        """Sort every block's expanded channels by importance; the full network computes the same."""
        for block in self.blocks:
            block.reorganize_channels()
