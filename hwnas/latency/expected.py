"""Differentiable expected latency: the LUT as a latency model for gradient-based search.

``expected_latency(predictor, probs)`` returns E[latency] under independent categorical distributions
(kernel and expand per block slot, depth per stage, resolution) and back-propagates the exact gradient
computed natively — nothing is detached, so a latency penalty really shapes the architecture logits.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .predictor import LatencyPredictor

_GROUPS = ("ks", "e", "d", "r")


class _ExpectedLatency(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, predictor: LatencyPredictor, ks: torch.Tensor, e: torch.Tensor, d: torch.Tensor,
                r: torch.Tensor) -> torch.Tensor:
        arrays = [t.detach().to("cpu", torch.float64).contiguous().numpy() for t in (ks, e, d, r)]
        value, *grads = predictor.expected(*arrays)
        ctx.save_for_backward(*(torch.from_numpy(g) for g in grads))
        ctx.target = (ks.dtype, ks.device)
        return torch.from_numpy(value).to(dtype=ks.dtype, device=ks.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        dtype, device = ctx.target
        scale = grad_out.to("cpu", torch.float64)
        outs = []
        for grad in ctx.saved_tensors:
            shaped = scale.reshape(-1, *([1] * (grad.dim() - 1)))
            outs.append((shaped * grad).to(dtype=dtype, device=device))
        return (None, *outs)


def expected_latency(predictor: LatencyPredictor, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """E[latency] (ms) for ``probs = {"ks": [B,K], "e": [B,E], "d": [G,D], "r": [R]}`` (or batched ``[N, ...]``).

    Returns a scalar for unbatched input, else ``[N]``. The resolution axis follows
    ``space.resolutions``; mask resolutions the table does not serve (``predictor.resolution_mask``).
    """
    missing = [g for g in _GROUPS if g not in probs]
    if missing:
        raise ValueError(f"probs is missing {missing}; expected keys {list(_GROUPS)}")
    tensors = [torch.as_tensor(probs[g]) for g in _GROUPS]
    batched = tensors[0].dim() == 3
    expected_dims = (3, 3, 3, 2) if batched else (2, 2, 2, 1)
    for group, tensor, dims in zip(_GROUPS, tensors, expected_dims):
        if tensor.dim() != dims:
            raise ValueError(f"probs[{group!r}] has shape {list(tensor.shape)}; expected {dims} dims "
                             f"({'batched' if batched else 'unbatched'}, judged from probs['ks'])")
    if not batched:
        tensors = [t.unsqueeze(0) for t in tensors]
    value = _ExpectedLatency.apply(predictor, *tensors)
    return value if batched else value[0]
