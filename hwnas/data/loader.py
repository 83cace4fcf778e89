"""BatchLoader: whole-dataset-in-memory mini-batches with exactly resumable shuffling and augmentation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from hwnas.data.datasets import ImageDataset
from hwnas.data.transforms import EvalTransform, to_tensor_nchw

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
_EPOCH_STRIDE = 1_000_003  # keeps (seed, epoch) permutation seeds apart


class BatchLoader:
    """Iterate (float32 N×C×H×W, int64 N) batches over an :class:`ImageDataset`, in the main process.

    The epoch's order is a permutation seeded by ``(seed, epoch)`` (the same on every rank); with
    ``world_size > 1`` rank r takes every world_size-th index of it, so ranks see disjoint shards of equal
    length. Augmentation draws from the loader's own generator (seeded by ``seed`` and ``rank``).
    ``state_dict()`` = epoch, position in the epoch and generator state, so ``load_state_dict`` continues
    with exactly the batches an uninterrupted loader would have produced. One ``for`` loop = the rest of the
    current epoch; the next loop starts the next epoch.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                 transform: Transform | None = None, drop_last: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        if transform is None:
            c = dataset.images.shape[-1]
            transform = EvalTransform(mean=(0.0,) * c, std=(1.0,) * c)  # plain x/255
        self.transform = transform
        self._images = torch.from_numpy(dataset.images)  # shared memory, no copy
        self._labels = torch.from_numpy(dataset.labels)
        self.generator = torch.Generator().manual_seed(seed * 7919 + rank)
        self.epoch, self.position = 0, 0  # position: samples of this rank's shard already yielded

    @property
    def shard_size(self) -> int:
        n = len(self.dataset)
        return n // self.world_size if self.world_size > 1 else n

    def __len__(self) -> int:
        n = self.shard_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample order for ``epoch``."""
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * _EPOCH_STRIDE + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        return order[self.rank :: self.world_size][: self.shard_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_indices(self.epoch)
        end = len(self) * self.batch_size if self.drop_last else len(order)
        while self.position < end:
            idx = order[self.position : self.position + self.batch_size]
            images = self._images.index_select(0, idx)  # uint8 NHWC
            x = self.transform(to_tensor_nchw(images.permute(0, 3, 1, 2)), self.generator)
            y = self._labels.index_select(0, idx)
            self.position += len(idx)
            yield x, y
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "generator": self.generator.get_state(),
                "seed": self.seed, "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world_size,
                "dataset_len": len(self.dataset)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size", "world_size", "dataset_len"):
            mine = len(self.dataset) if key == "dataset_len" else getattr(self, key)
            if key in state and state[key] != mine:
                raise ValueError(f"loader state has {key}={state[key]}, this loader has {mine}; resume would not be exact")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.generator.set_state(state["generator"])

