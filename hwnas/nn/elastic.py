"""Elastic layers: weights sized for the largest choice, run and extracted at the active one.

Channel-elastic layers use the first channels of their weights (OFA's Dynamic* ops). The elastic
depthwise conv derives smaller kernels from the centre of the largest through learned kernel
transformation matrices (OFA's ``DynamicSeparableConv2d`` with ``KERNEL_TRANSFORM_MODE = 1``).
Every elastic layer can also emit its active part as an ordinary module holding copies
(``to_static``), which is how subnets are extracted.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..space.signature import OpSignature, se_channels
from .depthwise import depthwise_conv2d
from .materialize import bn_prototype, conv_prototype, copy_module, copy_prefix, stamp
from .ops import init_conv_
from .static_blocks import InvertedResidual, MBConvBlock


class ElasticPointwiseConv(nn.Module):
    """1×1 conv over the input's channels (a prefix of ``in_channels``) to the first ``active_out`` outputs."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.active_out = out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_conv_(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.active_out
        return F.conv2d(x, self.weight[:out, :x.size(1)], None if self.bias is None else self.bias[:out])

    def to_static(self, in_channels: int, out_channels: int) -> nn.Conv2d:
        """An ``nn.Conv2d`` holding copies of the ``out × in`` corner of the weights."""
        prototype = conv_prototype(in_channels, out_channels, 1, 1, 1, self.bias is not None)
        bias = None if self.bias is None else copy_prefix(self.bias, out_channels)
        weight = copy_prefix(self.weight, out_channels, in_channels)
        return stamp(prototype, {"weight": weight, "bias": bias}, self.training)


class ElasticDepthwiseConv(nn.Module):
    """Depthwise k×k conv ('same' padding) with elastic kernel size and channel count.

    The weights are the largest kernel's. A smaller kernel is computed step by step, largest first:
    take the centre crop of the next larger kernel's (transformed) weights, flatten each channel's
    k×k patch and map it through that step's k²×k² matrix, shared across channels and
    identity-initialised (so training starts from the plain centre crop).
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.stride = stride
        max_kernel = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(channels, 1, max_kernel, max_kernel))
        # (source, target) kernel pairs, largest first: 7→5, then 5→3.
        self._steps = list(zip(self.kernel_sizes[:0:-1], self.kernel_sizes[-2::-1]))
        for source, target in self._steps:
            self.register_parameter(self._matrix_name(source, target),
                                    nn.Parameter(torch.empty(target * target, target * target)))
        self.active_kernel = max_kernel
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_conv_(self.weight)
        for source, target in self._steps:
            nn.init.eye_(getattr(self, self._matrix_name(source, target)))

    @staticmethod
    def _matrix_name(source: int, target: int) -> str:
        return f"{source}to{target}_matrix"  # OFA's parameter name

    def active_weight(self, channels: int, kernel: int) -> torch.Tensor:
        """Weights ``[channels, 1, kernel, kernel]`` of the first ``channels`` channels at ``kernel``."""
        if kernel not in self.kernel_sizes:
            raise ValueError(f"kernel={kernel} is not an elastic choice; allowed: {list(self.kernel_sizes)}")
        weight = self.weight[:channels]
        for source, target in self._steps:
            if source <= kernel:
                break
            start = (source - target) // 2
            patch = weight[:, :, start:start + target, start:start + target].reshape(channels, target * target)
            weight = F.linear(patch, getattr(self, self._matrix_name(source, target)))
            weight = weight.view(channels, 1, target, target)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, kernel = x.size(1), self.active_kernel
        return depthwise_conv2d(x, self.active_weight(channels, kernel), self.stride, kernel // 2)

    def to_static(self, channels: int, kernel: int) -> nn.Conv2d:
        """An ``nn.Conv2d`` (groups = channels) holding a copy of the active weights."""
        prototype = conv_prototype(channels, channels, kernel, self.stride, channels, False)
        if kernel == self.kernel_sizes[-1]:
            weight = copy_prefix(self.weight, channels)
        else:  # the transformed kernel is computed afresh: already a copy
            weight = self.active_weight(channels, kernel)
        return stamp(prototype, {"weight": weight}, self.training)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the input's channels, a prefix of ``num_features`` (OFA's DynamicBatchNorm2d).

    In training it normalises with batch statistics and updates the active slice of the running
    statistics; in eval mode it uses that slice.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:channels], self.running_var[:channels],
                            self.weight[:channels], self.bias[:channels], self.training, factor, self.eps)

    def to_static(self, channels: int) -> nn.BatchNorm2d:
        """An ``nn.BatchNorm2d`` holding copies of the first ``channels`` channels' parameters and statistics."""
        tensors = {name: copy_prefix(getattr(self, name), channels)
                   for name in ("weight", "bias", "running_mean", "running_var")}
        tensors["num_batches_tracked"] = self.num_batches_tracked.clone()
        return stamp(bn_prototype(channels, self.eps, self.momentum), tensors, self.training)


def _bn_tensors(bn: nn.BatchNorm2d) -> list[torch.Tensor]:
    return [bn.weight, bn.bias, bn.running_mean, bn.running_var]


def _permute_(tensor: torch.Tensor, dim: int, order: torch.Tensor) -> None:
    """Reorder ``tensor`` along ``dim`` in place (the Parameter object and its storage are kept)."""
    tensor.copy_(tensor.index_select(dim, order))


class ElasticMBConvBlock(InvertedResidual):
    """An elastic ``expanded_conv`` slot: elastic kernel and expand width, fixed input/output widths."""

    def __init__(self, max_signature: OpSignature, kernel_sizes: Sequence[int]) -> None:
        """``max_signature`` is the slot's op at its largest kernel and expand ratio."""
        sig = max_signature
        mid, hidden = sig.mid_c, se_channels(sig.mid_c)
        super().__init__(
            expand_conv=ElasticPointwiseConv(sig.in_c, mid), expand_bn=ElasticBatchNorm2d(mid),
            dw_conv=ElasticDepthwiseConv(mid, kernel_sizes, sig.stride), dw_bn=ElasticBatchNorm2d(mid),
            se_reduce=ElasticPointwiseConv(mid, hidden, bias=True) if sig.se else None,
            se_expand=ElasticPointwiseConv(hidden, mid, bias=True) if sig.se else None,
            project_conv=ElasticPointwiseConv(mid, sig.out_c), project_bn=nn.BatchNorm2d(sig.out_c),
            act=str(sig.act), residual=sig.residual,
        )
        self.in_channels = sig.in_c
        self.out_channels = sig.out_c

    def set_active(self, kernel: int, mid_channels: int) -> None:
        """Run with this depthwise kernel and expanded width from now on."""
        self.dw_conv.active_kernel = kernel
        self.expand_conv.active_out = mid_channels
        if self.se_reduce is not None:
            self.se_reduce.active_out = se_channels(mid_channels)
            self.se_expand.active_out = mid_channels

    def to_static(self, kernel: int, mid_channels: int) -> MBConvBlock:
        """The block at this kernel and width as a static ``MBConvBlock`` holding copies of the weights."""
        hidden = se_channels(mid_channels)
        has_se = self.se_reduce is not None
        block = MBConvBlock(
            expand_conv=self.expand_conv.to_static(self.in_channels, mid_channels),
            expand_bn=self.expand_bn.to_static(mid_channels),
            dw_conv=self.dw_conv.to_static(mid_channels, kernel), dw_bn=self.dw_bn.to_static(mid_channels),
            se_reduce=self.se_reduce.to_static(mid_channels, hidden) if has_se else None,
            se_expand=self.se_expand.to_static(hidden, mid_channels) if has_se else None,
            project_conv=self.project_conv.to_static(mid_channels, self.out_channels),
            project_bn=copy_module(self.project_bn), act=self.act, residual=self.residual,
        )
        block.training = self.training  # its layers already carry this block's mode
        return block

    def channel_importance(self) -> torch.Tensor:
        """L1 norm of the projection weights per expanded channel."""
        return self.project_conv.weight.detach().abs().sum(dim=(0, 2, 3))

    @torch.no_grad()
    def reorganize_channels(self) -> None:
        """Sort expanded channels by importance, most important first, without changing the full block.

        Smaller expand ratios use a prefix of the channels, so they keep the most important ones.
        The squeeze-excite's hidden channels are sorted likewise by their L1 norm in the expand conv.
        """
        order = torch.argsort(self.channel_importance(), descending=True, stable=True)
        moves = [(self.expand_conv.weight, 0), *((t, 0) for t in _bn_tensors(self.expand_bn)),
                 (self.dw_conv.weight, 0), *((t, 0) for t in _bn_tensors(self.dw_bn)),
                 (self.project_conv.weight, 1)]
        if self.se_reduce is not None:
            moves += [(self.se_reduce.weight, 1), (self.se_expand.weight, 0), (self.se_expand.bias, 0)]
        for tensor, dim in moves:
            _permute_(tensor, dim, order)
        if self.se_reduce is not None:
            hidden_importance = self.se_expand.weight.abs().sum(dim=(0, 2, 3))
            hidden_order = torch.argsort(hidden_importance, descending=True, stable=True)
            for tensor, dim in ((self.se_reduce.weight, 0), (self.se_reduce.bias, 0), (self.se_expand.weight, 1)):
                _permute_(tensor, dim, hidden_order)
