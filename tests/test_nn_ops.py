"""Static ops and elastic layers against references written from OFA's definitions."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwnas import get_space
from hwnas.nn import ConvBNAct, ElasticDepthwiseConv, MBConvBlock, create_op
from hwnas.space import OpSignature


def h_swish(x: torch.Tensor) -> torch.Tensor:
    return x * F.relu6(x + 3) / 6


def h_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3) / 6


def bn_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    def per_channel(t: torch.Tensor) -> torch.Tensor:
        return t[None, :, None, None]
    scale = per_channel(bn.weight / torch.sqrt(bn.running_var + bn.eps))
    return (x - per_channel(bn.running_mean)) * scale + per_channel(bn.bias)


@torch.no_grad()
def randomize_bn_(module: nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            for tensor, low in ((bn.weight, 0.5), (bn.running_var, 0.5)):
                tensor.copy_(low + torch.rand_like(tensor))
            for tensor in (bn.bias, bn.running_mean):
                tensor.copy_(0.3 * torch.randn_like(tensor))
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and conv.bias is not None:
            conv.bias.copy_(torch.randn_like(conv.bias))


def reference_mbconv(block: MBConvBlock, x: torch.Tensor) -> torch.Tensor:
    """OFA's MBConvLayer (+ identity shortcut), spelled out with functional ops."""
    act = {"relu": F.relu, "h_swish": h_swish}[block.act]
    out = x
    if block.expand_conv is not None:
        out = act(bn_eval(F.conv2d(out, block.expand_conv.weight), block.expand_bn))
    dw = block.dw_conv
    kernel, mid = dw.kernel_size[0], dw.out_channels
    out = act(bn_eval(F.conv2d(out, dw.weight, stride=dw.stride, padding=kernel // 2, groups=mid), block.dw_bn))
    if block.se_reduce is not None:
        squeezed = out.mean(3, keepdim=True).mean(2, keepdim=True)
        hidden = F.relu(F.conv2d(squeezed, block.se_reduce.weight, block.se_reduce.bias))
        out = out * h_sigmoid(F.conv2d(hidden, block.se_expand.weight, block.se_expand.bias))
    out = bn_eval(F.conv2d(out, block.project_conv.weight), block.project_bn)
    return out + x if dw.stride == (1, 1) and x.shape[1] == out.shape[1] else out


@pytest.mark.parametrize("in_c, mid_c, out_c, kernel, stride, se, act, hw", [
    (24, 72, 24, 5, 1, True, "h_swish", 9),   # elastic block with residual and SE
    (16, 16, 16, 3, 1, False, "relu", 8),     # OFA's first block: no expansion conv
    (24, 96, 40, 7, 2, True, "relu", 15),     # stride 2 on an odd size: ceil(15 / 2) = 8
])
def test_mbconv_block_is_ofa_mbconv(in_c: int, mid_c: int, out_c: int, kernel: int, stride: int, se: bool,
                                    act: str, hw: int) -> None:
    torch.manual_seed(0)
    block = MBConvBlock.create(in_c, mid_c, out_c, kernel, stride, se, act).eval()
    randomize_bn_(block)
    x = torch.randn(2, in_c, hw, hw)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, out_c, -(-hw // stride), -(-hw // stride))
    torch.testing.assert_close(out, reference_mbconv(block, x), rtol=1e-5, atol=1e-5)
    assert (block.expand_conv is None) == (mid_c == in_c)


def test_conv_ops_are_conv_bn_hswish() -> None:
    torch.manual_seed(0)
    stem = ConvBNAct("Conv", 3, 16, kernel=3, stride=2).eval()
    randomize_bn_(stem)
    x = torch.randn(2, 3, 17, 17)
    with torch.no_grad():
        expected = h_swish(bn_eval(F.conv2d(x, stem.conv.weight, stride=2, padding=1), stem.bn))
        torch.testing.assert_close(stem(x), expected, rtol=1e-5, atol=1e-5)
    feature_mix = ConvBNAct("Conv_2", 32, 64)
    assert feature_mix.bn is None and feature_mix.conv.bias is None


@pytest.mark.parametrize("name", ["tiny-mbv3", "ofa-mbv3-w1.0"])
def test_create_op_builds_every_signature_of_a_space(name: str) -> None:
    space = get_space(name)
    r = min(space.resolutions)
    for sig in space.all_signatures([r]):
        op = create_op(sig)
        assert op.signature(sig.in_hw) == sig
        assert sum(p.numel() for p in op.parameters()) == sig.params


def test_create_op_refuses_an_impossible_signature() -> None:
    sig = get_space("tiny-mbv3").signatures(get_space("tiny-mbv3").max_arch())[3]
    with pytest.raises(ValueError, match="no static op has signature"):
        create_op(dataclasses.replace(sig, residual=not sig.residual))
    with pytest.raises(ValueError, match="needs an activation"):
        create_op(OpSignature("Conv", in_hw=8, in_c=3, out_hw=8, out_c=8, kernel=3))


def reference_kernel(weight: torch.Tensor, matrices: dict[tuple[int, int], torch.Tensor], kernel: int) -> torch.Tensor:
    """OFA's DynamicSeparableConv2d.get_active_filter (KERNEL_TRANSFORM_MODE=1), one channel at a time."""
    channels, size = weight.shape[0], weight.shape[-1]
    filters = [weight[c, 0] for c in range(channels)]
    while size > kernel:
        target = size - 2
        matrix = matrices[(size, target)]
        filters = [(matrix @ f[1:-1, 1:-1].reshape(-1)).reshape(target, target) for f in filters]
        size = target
    return torch.stack(filters)[:, None]


def test_elastic_depthwise_kernels_follow_ofa_transform() -> None:
    torch.manual_seed(0)
    layer = ElasticDepthwiseConv(16, (3, 5, 7), stride=1)
    with torch.no_grad():
        centre = layer.weight[:8, :, 2:5, 2:5]
        torch.testing.assert_close(layer.active_weight(8, 3), centre)  # identity-initialised transforms
        matrices = {}
        for source, target in ((7, 5), (5, 3)):
            matrix = getattr(layer, f"{source}to{target}_matrix")
            assert matrix.shape == (target * target, target * target)
            matrix.add_(0.3 * torch.randn_like(matrix))
            matrices[(source, target)] = matrix
        x = torch.randn(2, 16, 9, 9)
        for kernel in (3, 5, 7):
            expected = reference_kernel(layer.weight[:12], matrices, kernel)
            torch.testing.assert_close(layer.active_weight(12, kernel), expected, rtol=1e-5, atol=1e-6)
            layer.active_kernel = kernel
            torch.testing.assert_close(layer(x[:, :12]), F.conv2d(x[:, :12], expected, padding=kernel // 2, groups=12),
                                       rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="kernel=4"):
        layer.active_weight(8, 4)


def test_nn_imports_only_space_and_torch() -> None:
    code = "import sys, hwnas.nn; print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('hwnas.')}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # atomic: file-writing leaf that imports nothing of ours; _C: the native core (the depthwise weight gradient)
    assert out.strip() == "['_C', 'atomic', 'nn', 'space']"
