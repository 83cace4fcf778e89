"""The native depthwise weight gradient against PyTorch's, its fallbacks and its errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwnas import _C
from hwnas.nn.depthwise import depthwise_conv2d
from hwnas.nn.elastic import ElasticDepthwiseConv


def _grads(x: torch.Tensor, weight: torch.Tensor, stride: int, native: bool) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    out = depthwise_conv2d(x, weight, stride, weight.size(2) // 2, native_grad=native)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * upstream).sum().backward()
    return out.detach(), x.grad, weight.grad


@pytest.mark.parametrize("channels,size,kernel,stride", [
    (48, 16, 7, 1), (72, 9, 5, 2), (20, 8, 7, 2), (120, 4, 7, 1), (16, 3, 5, 1), (33, 10, 5, 1),
])
@pytest.mark.parametrize("channels_last", [True, False])
def test_matches_pytorch(channels: int, size: int, kernel: int, stride: int, channels_last: bool) -> None:
    """Whole blocks, leftover channels, stride 2, odd sizes, windows wider than the image, either layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(5, channels, size, size + 1).contiguous(memory_format=fmt)
    weight = torch.randn(channels, 1, kernel, kernel)
    ref, native = _grads(x, weight, stride, False), _grads(x, weight, stride, True)
    for a, b in zip(ref, native):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert not torch.equal(native[2], torch.zeros_like(native[2]))


def test_thread_count_does_not_change_the_sums() -> None:
    x = np.random.default_rng(0).standard_normal((4, 9, 9, 100)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((4, 9, 9, 100)).astype(np.float32)
    one = _C.depthwise_weight_grad(x, g, 7, 1, 3, 1)
    assert one.shape == (100, 7, 7)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(_C.depthwise_weight_grad(x, g, 7, 1, 3, threads), one)


def test_other_kernels_fall_back_to_pytorch() -> None:
    """3×3 (and any size) still gives PyTorch's gradients: the native path handles any K, the wrapper picks."""
    x, weight = torch.randn(2, 24, 8, 8), torch.randn(24, 1, 3, 3)
    for a, b in zip(_grads(x, weight, 1, False), _grads(x, weight, 1, True)):
        torch.testing.assert_close(b, a)
    x_nhwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = F.conv2d(x, weight, None, 1, 1, 1, 24)
    g = torch.ones_like(out)
    expected = torch.ops.aten.convolution_backward(g, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 24,
                                                   [False, True, False])[1]
    native = _C.depthwise_weight_grad(x_nhwc, g.permute(0, 2, 3, 1).contiguous().numpy(), 3, 1, 1)
    np.testing.assert_allclose(native, expected.view(24, 3, 3).numpy(), rtol=1e-4, atol=1e-4)


def test_elastic_layer_trains_its_transform_matrices_through_the_native_gradient() -> None:
    layer = ElasticDepthwiseConv(32, (3, 5, 7), stride=1)
    layer.active_kernel = 5
    layer(torch.randn(2, 32, 8, 8)).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert getattr(layer, "7to5_matrix").grad.abs().sum() > 0


@pytest.mark.parametrize("x_shape,g_shape,args,message", [
    ((2, 8, 8, 4), (2, 8, 8, 4), (7, 1, 3, 0), "threads=0"),
    ((2, 8, 8, 4), (2, 7, 8, 4), (7, 1, 3, 1), "output 7x8"),
    ((2, 8, 8, 4), (2, 8, 8, 5), (7, 1, 3, 1), "batch and channels"),
    ((2, 8, 8, 4), (2, 8, 8, 4), (0, 1, 3, 1), "kernel=0"),
    ((2, 8, 8), (2, 8, 8, 4), (7, 1, 3, 1), "4-D"),
])
def test_bad_arguments_name_the_value(x_shape, g_shape, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        _C.depthwise_weight_grad(np.zeros(x_shape, np.float32), np.zeros(g_shape, np.float32), *args)


def test_native_weight_grad_switch_restores_the_setting() -> None:
    from hwnas.nn import depthwise
    x, weight = torch.randn(2, 16, 6, 6), torch.randn(16, 1, 5, 5, requires_grad=True)
    with depthwise.native_weight_grad(False):
        assert depthwise_conv2d(x, weight, 1, 2).grad_fn.name() != "_NativeGradDepthwiseBackward"
    assert depthwise_conv2d(x, weight, 1, 2).grad_fn.name() == "_NativeGradDepthwiseBackward"


def test_static_block_trains_through_the_native_gradient_and_exports_the_plain_layer(monkeypatch) -> None:
    """A subnet trained alone gets the same gradients either way; in eval mode the block runs its nn.Conv2d."""
    from hwnas.nn import MBConvBlock, depthwise
    native_calls = []
    real = depthwise._C.depthwise_weight_grad
    monkeypatch.setattr(depthwise._C, "depthwise_weight_grad", lambda *a: native_calls.append(1) or real(*a))
    torch.manual_seed(0)
    block = MBConvBlock.create(16, 48, 24, 7, 2, se=True, act="h_swish").train()
    x = torch.randn(4, 16, 12, 12)
    grads = []
    for native in (False, True):
        block.zero_grad()
        with depthwise.native_weight_grad(native):
            out = block(x)
        out.square().sum().backward()
        grads.append(block.dw_conv.weight.grad.clone())
        assert len(native_calls) == int(native)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)
    block.eval()
    calls = []
    block.dw_conv.register_forward_hook(lambda *args: calls.append(1))
    block(x)
    assert calls == [1]
