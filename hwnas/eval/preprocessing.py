"""How images are normalised before the network, measured once on the training split and recorded with
every supernet, so that search, export and the runtime all feed a subnet the inputs it was trained on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.datasets import ImageDataset
from ..data.transforms import EvalTransform


@dataclass(frozen=True)
class Preprocessing:
    """How images are normalised before the network: per-channel mean and std of ``x / 255``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, dataset: ImageDataset) -> Preprocessing:
        """Per-channel mean and std of ``dataset``, exact from 256-bin histograms, rounded to 4 decimals."""
        pixels = dataset.images.reshape(-1, dataset.images.shape[-1])
        counts = np.zeros((pixels.shape[1], 256), dtype=np.int64)
        for start in range(0, len(pixels), 1 << 20):  # chunks: bincount copies its input to intp
            chunk = pixels[start:start + (1 << 20)]
            for channel in range(pixels.shape[1]):
                counts[channel] += np.bincount(chunk[:, channel], minlength=256)
        values = np.arange(256) / 255.0
        mean = counts @ values / len(pixels)
        std = np.sqrt(np.maximum(counts @ values**2 / len(pixels) - mean**2, 1e-6))
        return cls(tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std))

    def transform(self, resolution: int | None = None) -> EvalTransform:
        return EvalTransform(self.mean, self.std, resolution)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Preprocessing:
        """The inverse of :meth:`to_dict`; a malformed record is refused, naming it."""
        try:
            mean, std = tuple(float(v) for v in value["mean"]), tuple(float(v) for v in value["std"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"preprocessing {value!r}: expected {{'mean': [...], 'std': [...]}}") from None
        if len(mean) != len(std) or not mean or min(std) <= 0:
            raise ValueError(f"preprocessing {value!r}: mean and std need one value per channel, std > 0")
        return cls(mean, std)

