"""Batch transforms (no torchvision): every one takes a whole batch and a ``torch.Generator``.

Geometric transforms accept uint8 or float tensors in NCHW, or uint8 NHWC numpy arrays (converted with
:func:`to_tensor_nchw`, a zero-copy view); randomness comes only from the generator passed in, so a
loader that saves its generator state replays the same augmentation stream after a resume.
Order for training: crop and flip on uint8 (4× less memory traffic), then normalise, then resize.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


def to_tensor_nchw(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC numpy/tensor -> NCHW tensor view (channels-last memory, no copy). NCHW tensors pass through."""
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
        if batch.ndim != 4:
            raise ValueError(f"expected an N×H×W×C batch, got shape {tuple(batch.shape)}")
        return batch.permute(0, 3, 1, 2)
    if batch.ndim != 4:
        raise ValueError(f"expected an N×C×H×W batch, got shape {tuple(batch.shape)}")
    return batch


def _pad_nhwc(x: torch.Tensor, padding: int, mode: str) -> torch.Tensor:
    n, h, w, c = x.shape
    if mode == "zero":
        out = x.new_zeros((n, h + 2 * padding, w + 2 * padding, c))
        out[:, padding : padding + h, padding : padding + w] = x
        return out
    rows = (torch.arange(-padding, h + padding)).abs()
    rows = torch.where(rows >= h, 2 * (h - 1) - rows, rows)  # reflect without repeating the edge
    cols = (torch.arange(-padding, w + padding)).abs()
    cols = torch.where(cols >= w, 2 * (w - 1) - cols, cols)
    return x.index_select(1, rows).index_select(2, cols)


def random_crop(batch: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None,
                mode: str = "zero", size: int | None = None) -> torch.Tensor:
    """Pad by ``padding`` px ('zero' or 'reflect', as torch's reflect: the edge is not repeated) and cut a random
    ``size``×``size`` window per image (default: the input size). Windows are a strided view of the padded batch,
    so the crop is one row-wise copy."""
    x = to_tensor_nchw(batch)
    n, c, h, w = x.shape
    size_h, size_w = size or h, size or w
    if mode not in ("zero", "reflect"):
        raise ValueError(f"padding mode must be 'zero' or 'reflect', got {mode!r}")
    if mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} must be smaller than the image ({h}×{w})")
    ny, nx = h + 2 * padding - size_h + 1, w + 2 * padding - size_w + 1
    if ny < 1 or nx < 1:
        raise ValueError(f"crop size {size} is larger than the padded image")
    oy = torch.randint(0, ny, (n,), generator=generator)
    ox = torch.randint(0, nx, (n,), generator=generator)
    padded = _pad_nhwc(x.permute(0, 2, 3, 1), padding, mode).contiguous()
    sn, sh, sw, sc = padded.stride()
    windows = padded.as_strided((n, ny, nx, size_h, size_w, c), (sn, sh, sw, sh, sw, sc))
    return windows[torch.arange(n), oy, ox].permute(0, 3, 1, 2)


def random_hflip(batch: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    x = to_tensor_nchw(batch)
    flip = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) -> float32 ``(x/255 - mean) / std`` per channel, NCHW contiguous."""
    x = to_tensor_nchw(batch)
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {x.shape[1]} channels")
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * scale
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * scale
    x = x.contiguous(memory_format=torch.contiguous_format).to(torch.float32)
    return x.sub_(m).div_(s)


def resize(batch: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float NCHW batch to ``size`` (the batch's sampled resolution); antialiased only when
    shrinking, plain bilinear (antialias off) when enlarging; a no-op at the same size."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(batch.shape[-2:]) == hw:
        return batch
    if not batch.is_floating_point():
        raise ValueError("resize expects a float batch; normalise first")
    shrink = hw[0] < batch.shape[-2] or hw[1] < batch.shape[-1]
    return F.interpolate(batch, size=hw, mode="bilinear", align_corners=False, antialias=shrink)


class TrainTransform:
    """Crop (padding, zero/reflect) + horizontal flip + normalise; optional fixed output ``resolution``.
    Picklable and stateless: all randomness comes from the generator argument."""

    def __init__(self, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD, padding: int = 4,
                 pad_mode: str = "zero", flip: bool = True, resolution: int | None = None) -> None:
        self.mean, self.std, self.padding, self.pad_mode = tuple(mean), tuple(std), padding, pad_mode
        self.flip, self.resolution = flip, resolution

    def __call__(self, batch: np.ndarray | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = to_tensor_nchw(batch)
        if self.padding:
            x = random_crop(x, self.padding, generator, self.pad_mode)
        if self.flip:
            x = random_hflip(x, 0.5, generator)
        x = normalize(x, self.mean, self.std)
        return resize(x, self.resolution) if self.resolution else x

    def __repr__(self) -> str:
        return (f"TrainTransform(mean={self.mean}, std={self.std}, padding={self.padding}, pad_mode={self.pad_mode!r}, "
                f"flip={self.flip}, resolution={self.resolution})")


class EvalTransform:
    """Normalise (+ optional fixed ``resolution``); deterministic."""

    def __init__(self, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 resolution: int | None = None) -> None:
        self.mean, self.std, self.resolution = tuple(mean), tuple(std), resolution

    def __call__(self, batch: np.ndarray | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = normalize(batch, self.mean, self.std)
        return resize(x, self.resolution) if self.resolution else x

    def __repr__(self) -> str:
        return f"EvalTransform(mean={self.mean}, std={self.std}, resolution={self.resolution})"
