"""Static MobileNetV3 operators: one module per ``OpSignature`` kind, and a subnet made of them.

These are the modules an extracted subnet consists of and the ones the profiler exports and times one
by one, so that the op we profile is the op we deploy. Every op can name its own signature
(``op.signature(in_hw)``) and ``create_op(signature)`` builds a freshly initialised one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..space.signature import OpSignature, se_channels
from ..space.utils import ceil_div
from .depthwise import depthwise_conv2d
from .ops import get_act

CONV_KINDS = ("Conv", "Conv_1", "Conv_2")


class ConvBNAct(nn.Module):
    """Stem (``Conv``), final expand (``Conv_1``) or feature mix (``Conv_2``): conv → BN → activation.

    The conv has no bias and 'same' padding; ``Conv_2`` has no BN, as in OFA's MobileNetV3 head.
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 act: str = "h_swish") -> None:
        super().__init__()
        if kind not in CONV_KINDS:
            raise ValueError(f"kind={kind!r} is not a plain conv op; allowed: {CONV_KINDS}")
        self.kind = kind
        self.act = act
        self.act_fn = get_act(act)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if kind != "Conv_2" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act_fn(x)

    def signature(self, in_hw: int) -> OpSignature:
        conv = self.conv
        return OpSignature(self.kind, in_hw=in_hw, in_c=conv.in_channels, out_hw=ceil_div(in_hw, conv.stride[0]),
                           out_c=conv.out_channels, kernel=conv.kernel_size[0], stride=conv.stride[0],
                           act=self.act)


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [1×1 expand → BN → act] → k×k depthwise → BN → act → [SE] → 1×1 project → BN [+ x].

    The squeeze-excite is global pool → 1×1 reduce (bias) → ReLU → 1×1 expand (bias) → h-sigmoid →
    scale. The layers are injected so that the static block and the elastic supernet block share
    this forward; the expand layers are ``None`` for OFA's first block (expand ratio 1).
    """

    def __init__(self, *, dw_conv: nn.Module, dw_bn: nn.Module, project_conv: nn.Module, project_bn: nn.Module,
                 act: str, residual: bool, expand_conv: nn.Module | None = None,
                 expand_bn: nn.Module | None = None, se_reduce: nn.Module | None = None,
                 se_expand: nn.Module | None = None) -> None:
        super().__init__()
        self.expand_conv = expand_conv
        self.expand_bn = expand_bn
        self.dw_conv = dw_conv
        self.dw_bn = dw_bn
        self.se_reduce = se_reduce
        self.se_expand = se_expand
        self.project_conv = project_conv
        self.project_bn = project_bn
        self.act = act
        self.act_fn = get_act(act)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand_conv is not None:
            out = self.act_fn(self.expand_bn(self.expand_conv(out)))
        out = self.act_fn(self.dw_bn(self.depthwise(out)))
        if self.se_reduce is not None:
            scale = self.se_expand(F.relu(self.se_reduce(out.mean((2, 3), keepdim=True))))
            out = out * F.hardsigmoid(scale)
        out = self.project_bn(self.project_conv(out))
        return out + x if self.residual else out

    def depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise conv layer on ``x`` (a subclass may route it through a faster gradient)."""
        return self.dw_conv(x)


class MBConvBlock(InvertedResidual):
    """The static ``expanded_conv`` op: an inverted residual made of ordinary conv and BN layers."""

    def depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """In training, the conv with the native core's weight gradient (as the supernet's): a subnet trained
        alone then steps as fast as the supernet does; in eval mode (export, inference) the layer itself."""
        dw = self.dw_conv
        plain = (not self.training or dw.bias is not None or dw.padding_mode != "zeros" or dw.dilation != (1, 1)
                 or not isinstance(dw.padding, tuple) or len(set(dw.padding)) != 1 or len(set(dw.stride)) != 1
                 or not dw.groups == dw.in_channels == dw.out_channels)
        return dw(x) if plain else depthwise_conv2d(x, dw.weight, dw.stride[0], dw.padding[0])

    @classmethod
    def create(cls, in_channels: int, mid_channels: int, out_channels: int, kernel: int, stride: int,
               se: bool, act: str) -> MBConvBlock:
        """A freshly initialised block; it expands with a 1×1 conv unless ``mid == in``."""
        expands = mid_channels != in_channels
        hidden = se_channels(mid_channels)
        return cls(
            expand_conv=nn.Conv2d(in_channels, mid_channels, 1, bias=False) if expands else None,
            expand_bn=nn.BatchNorm2d(mid_channels) if expands else None,
            dw_conv=nn.Conv2d(mid_channels, mid_channels, kernel, stride, kernel // 2, groups=mid_channels,
                              bias=False),
            dw_bn=nn.BatchNorm2d(mid_channels),
            se_reduce=nn.Conv2d(mid_channels, hidden, 1) if se else None,
            se_expand=nn.Conv2d(hidden, mid_channels, 1) if se else None,
            project_conv=nn.Conv2d(mid_channels, out_channels, 1, bias=False),
            project_bn=nn.BatchNorm2d(out_channels),
            act=act, residual=stride == 1 and in_channels == out_channels,
        )

    def signature(self, in_hw: int) -> OpSignature:
        dw = self.dw_conv
        in_c = dw.in_channels if self.expand_conv is None else self.expand_conv.in_channels
        return OpSignature(
            "expanded_conv", in_hw=in_hw, in_c=in_c, out_hw=ceil_div(in_hw, dw.stride[0]),
            out_c=self.project_conv.out_channels, mid_c=dw.out_channels, kernel=dw.kernel_size[0],
            stride=dw.stride[0], se=self.se_reduce is not None, act=self.act, residual=self.residual,
        )


class GlobalAvgPool(nn.Module):
    """The ``AvgPool2D`` op: spatial mean, keeping a 1×1 map for the 1×1 conv that follows."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)

    def signature(self, in_hw: int) -> OpSignature:
        return OpSignature("AvgPool2D", in_hw=in_hw, in_c=self.channels, out_hw=1, out_c=self.channels)


class Classifier(nn.Module):
    """The ``Logits`` op: flatten → dropout (training only) → linear with bias."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.flatten(x, 1)))

    def signature(self, in_hw: int) -> OpSignature:
        return OpSignature("Logits", in_hw=in_hw, in_c=self.linear.in_features, out_hw=0,
                           out_c=self.linear.out_features)


def create_op(signature: OpSignature, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised static op with exactly this signature (``dropout`` applies to ``Logits``)."""
    sig = signature
    if sig.act is None and sig.kind in (*CONV_KINDS, "expanded_conv"):
        raise ValueError(f"{sig.key}: a {sig.kind} op needs an activation")
    if sig.kind in CONV_KINDS:
        op: nn.Module = ConvBNAct(sig.kind, sig.in_c, sig.out_c, sig.kernel, sig.stride, str(sig.act))
    elif sig.kind == "expanded_conv":
        op = MBConvBlock.create(sig.in_c, sig.mid_c, sig.out_c, sig.kernel, sig.stride, sig.se, str(sig.act))
    elif sig.kind == "AvgPool2D":
        op = GlobalAvgPool(sig.in_c)
    else:
        op = Classifier(sig.in_c, sig.out_c, dropout)
    if op.signature(sig.in_hw) != sig:
        raise ValueError(f"no static op has signature {sig.key} (built {op.signature(sig.in_hw).key})")
    return op


class StaticSubnet(nn.Sequential):
    """An ordinary feed-forward network: its children are the ops above, in execution order."""

    def signatures(self, in_hw: int) -> list[OpSignature]:
        """Each op's signature for an ``in_hw``×``in_hw`` input, derived from the modules themselves."""
        signatures = []
        for op in self:
            signatures.append(op.signature(in_hw))
            in_hw = signatures[-1].out_hw
        return signatures
