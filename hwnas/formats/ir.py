"""A minimal inference graph lowered from hwnas's static modules, with BatchNorm folded into convs.

Tensors are named strings in NCHW order (writers for NHWC runtimes transpose the weights). The node set
is just what MobileNetV3 ops need: convolution with a fused activation, global average pooling,
broadcast multiply (squeeze-excite), add (residual) and a linear classifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

ACTIVATIONS = (None, "relu", "h_swish", "h_sigmoid")


@dataclass(frozen=True)
class Conv:
    """Conv2d with symmetric zero padding ``pad`` and a fused activation. ``weight``: [O, I/groups, k, k]."""

    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int
    groups: int
    act: str | None

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.weight.shape[0] and self.weight.shape[1] == 1


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over H and W, keeping a 1×1 map."""

    input: str
    output: str


@dataclass(frozen=True)
class Mul:
    """Elementwise ``a * b`` with ``b`` broadcast from [N, C, 1, 1] (squeeze-excite scaling)."""

    a: str
    b: str
    output: str


@dataclass(frozen=True)
class Add:
    """Elementwise ``a + b`` (residual connection)."""

    a: str
    b: str
    output: str


@dataclass(frozen=True)
class Linear:
    """Flatten [N, C, 1, 1] → [N, C], then ``x @ weight.T + bias``. ``weight``: [out, in]."""

    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray


Node = Conv | GlobalAvgPool | Mul | Add | Linear


@dataclass
class Graph:
    """Nodes in execution order from ``input`` [N, C, H, W] to ``output``."""

    input: str
    input_shape: tuple[int, int, int, int]
    output: str = ""
    nodes: list[Node] = field(default_factory=list)
    _count: int = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of ``bn(conv(x))`` as one conv (inference statistics), computed in float64."""
    weight = _array(conv.weight)
    bias = _array(conv.bias) if conv.bias is not None else np.zeros(weight.shape[0])
    if bn is not None:
        scale = _array(bn.weight) / np.sqrt(_array(bn.running_var) + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - _array(bn.running_mean)) * scale + _array(bn.bias)
    return weight.astype(np.float32), bias.astype(np.float32)


def _conv(graph: Graph, x: str, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: str | None, hint: str) -> str:
    if act not in ACTIVATIONS:
        raise ValueError(f"activation {act!r} has no lowering; supported: {ACTIVATIONS}")
    if conv.padding_mode != "zeros" or conv.dilation != (1, 1) or conv.kernel_size[0] != conv.kernel_size[1]:
        raise ValueError(f"{hint}: only square, undilated, zero-padded convolutions are supported")
    weight, bias = fold_conv_bn(conv, bn)
    out = graph.fresh(hint)
    graph.nodes.append(Conv(x, out, weight, bias, conv.stride[0], int(conv.padding[0]), conv.groups, act))
    return out


def _lower_op(graph: Graph, x: str, op: nn.Module) -> str:
    """Append the nodes of one static op (``hwnas.nn.static_blocks``) and return its output name."""
    from ..nn.static_blocks import Classifier, ConvBNAct, MBConvBlock
    from ..nn.static_blocks import GlobalAvgPool as PoolOp

    if isinstance(op, ConvBNAct):
        return _conv(graph, x, op.conv, op.bn, op.act, op.kind.lower())
    if isinstance(op, MBConvBlock):
        out = x
        if op.expand_conv is not None:
            out = _conv(graph, out, op.expand_conv, op.expand_bn, op.act, "expand")
        out = _conv(graph, out, op.dw_conv, op.dw_bn, op.act, "depthwise")
        if op.se_reduce is not None:
            pooled = graph.fresh("se_pool")
            graph.nodes.append(GlobalAvgPool(out, pooled))
            hidden = _conv(graph, pooled, op.se_reduce, None, "relu", "se_reduce")
            gate = _conv(graph, hidden, op.se_expand, None, "h_sigmoid", "se_expand")
            scaled = graph.fresh("se_scale")
            graph.nodes.append(Mul(out, gate, scaled))
            out = scaled
        out = _conv(graph, out, op.project_conv, op.project_bn, None, "project")
        if op.residual:
            summed = graph.fresh("residual")
            graph.nodes.append(Add(out, x, summed))
            out = summed
        return out
    if isinstance(op, PoolOp):
        out = graph.fresh("avgpool")
        graph.nodes.append(GlobalAvgPool(x, out))
        return out
    if isinstance(op, Classifier):
        out = graph.fresh("logits")
        graph.nodes.append(Linear(x, out, _array(op.linear.weight).astype(np.float32),
                                  _array(op.linear.bias).astype(np.float32)))
        return out
    raise ValueError(f"{type(op).__name__} is not a static hwnas op; lowering supports "
                     "ConvBNAct, MBConvBlock, GlobalAvgPool, Classifier and StaticSubnet")


def lower(module: nn.Module, input_shape: tuple[int, int, int, int]) -> Graph:
    """Lower a static op or a ``StaticSubnet`` (a sequence of ops) for an NCHW input of ``input_shape``."""
    from ..nn.static_blocks import StaticSubnet

    graph = Graph(input="input", input_shape=tuple(int(v) for v in input_shape))  # type: ignore[arg-type]
    ops = list(module) if isinstance(module, StaticSubnet) else [module]
    x = graph.input
    for op in ops:
        x = _lower_op(graph, x, op)
    graph.output = x
    return graph


def reference_forward(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Run the graph with torch in float64: the ground truth writers' files are compared against."""
    import torch.nn.functional as F

    values = {graph.input: torch.from_numpy(np.asarray(x, dtype=np.float64))}
    acts = {None: lambda t: t, "relu": F.relu, "h_swish": F.hardswish, "h_sigmoid": F.hardsigmoid}
    for node in graph.nodes:
        if isinstance(node, Conv):
            y = F.conv2d(values[node.input], torch.from_numpy(node.weight.astype(np.float64)),
                         torch.from_numpy(node.bias.astype(np.float64)), node.stride, node.pad, 1, node.groups)
            values[node.output] = acts[node.act](y)
        elif isinstance(node, GlobalAvgPool):
            values[node.output] = values[node.input].mean((2, 3), keepdim=True)
        elif isinstance(node, Mul):
            values[node.output] = values[node.a] * values[node.b]
        elif isinstance(node, Add):
            values[node.output] = values[node.a] + values[node.b]
        else:
            flat = torch.flatten(values[node.input], 1)
            values[node.output] = flat @ torch.from_numpy(node.weight.astype(np.float64)).T + torch.from_numpy(
                node.bias.astype(np.float64))
    return values[graph.output].numpy()
