"""Depthwise convolution whose weight gradient on CPU comes from the native core.

oneDNN computes the weight gradient of a 5×5 or 7×7 depthwise convolution far slower than the forward
pass of the same convolution (a 96-channel 16×16 batch of 64: ~16 ms against ~1.4 ms on a 2-core Xeon),
so on CPU it took most of a supernet training step. ``hwnas._C.depthwise_weight_grad``
(csrc/depthwise.cpp) computes the same sum over channels-last tensors with the channels vectorised; the
input gradient stays with PyTorch (already fast). 3×3 kernels, other devices and dtypes, and calls
without a weight gradient go through plain ``F.conv2d``: there PyTorch is faster or the kernel does
not apply. ``native_weight_grad(False)`` switches the native path off (to compare, or to rule it out);
``benchmarks/depthwise_grad.py`` measures both side by side.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

from .. import _C

NATIVE_KERNELS = (5, 7)  # where the native weight gradient beats oneDNN's (3×3: oneDNN's is faster)
_native_enabled = True


@contextmanager
def native_weight_grad(enabled: bool) -> Iterator[None]:
    """Within the block, depthwise convolutions use the native weight gradient only if ``enabled``."""
    global _native_enabled
    previous, _native_enabled = _native_enabled, enabled
    try:
        yield
    finally:
        _native_enabled = previous


def _uses_native(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (torch.is_grad_enabled() and weight.requires_grad and x.device.type == "cpu" and weight.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32 and x.dim() == 4 and x.numel() > 0
            and weight.size(2) == weight.size(3) and weight.size(2) in NATIVE_KERNELS)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                     native_grad: bool | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, groups=channels)`` for ``weight`` ``[C, 1, K, K]``.

    Same values and gradients as ``F.conv2d``; with ``native_grad`` (default: as ``native_weight_grad`` set
    it, on unless switched off) and a CPU float32 call that needs the weight's gradient at K in
    ``NATIVE_KERNELS``, the weight gradient is computed by the native core.
    """
    if (_native_enabled if native_grad is None else native_grad) and _uses_native(x, weight):
        return _NativeGradDepthwise.apply(x, weight, stride, padding)
    return F.conv2d(x, weight, None, stride, padding, 1, x.size(1))


class _NativeGradDepthwise(torch.autograd.Function):
    """PyTorch's forward and input gradient; the weight gradient from ``_C.depthwise_weight_grad``."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, x.size(1))

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s, p, channels, kernel = ctx.stride, ctx.padding, x.size(1), weight.size(2)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad_out, x, weight, None, [s, s], [p, p], [1, 1], False,
                                                         [0, 0], channels, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            nhwc = lambda t: t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).numpy()  # noqa: E731
            grad = _C.depthwise_weight_grad(nhwc(x), nhwc(grad_out), kernel, s, p, torch.get_num_threads())
            grad_w = torch.from_numpy(grad).view_as(weight)
        return grad_x, grad_w, None, None
