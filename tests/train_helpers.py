"""A tiny in-memory dataset and loader with exact-resume state, and a DDP worker, for the training tests."""
from __future__ import annotations

import os

import numpy as np
import torch


class TensorLoader:
    """Shuffled batches of in-memory tensors; ``state_dict`` is (epoch, position), shard by rank."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.images, self.labels = images[rank::world_size], labels[rank::world_size]
        self.batch_size, self.seed = batch_size, seed
        self.epoch = self.position = 0

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        while self.position < len(self):
            index = order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
            self.position += 1
            yield self.images[index], self.labels[index]
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "check": torch.tensor([self.epoch], dtype=torch.int64)}

    def load_state_dict(self, state: dict) -> None:
        assert int(state["check"][0]) == state["epoch"]  # tensors survive the checkpoint round trip
        self.epoch, self.position = state["epoch"], state["position"]


def random_data(n: int = 64, size: int = 32, classes: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def write_npz_dataset(folder, name: str = "toy", n_train: int = 96, n_test: int = 40, size: int = 32, seed: int = 0):
    """``<name>_{train,test}.npz`` of random uint8 images whose class shows in their mean colour (learnable)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 4
        images = rng.integers(0, 96, (n, size, size, 3)).astype(np.uint8)
        images[..., 0] += (labels * 50).astype(np.uint8)[:, None, None]
        np.savez(os.path.join(folder, f"{name}_{split}.npz"), images=images, labels=labels.astype(np.uint8),
                 classes=np.array(["a", "b", "c", "d"]))


def ddp_worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    """One rank of a 2-process gloo run: a few steps of two phases, then this rank's weights to a file."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from hwnas.nn import OFAMobileNetV3
    from hwnas.space import get_space
    from hwnas.train import Phase, TrainConfig, Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        space = get_space("tiny-mbv3")
        torch.manual_seed(rank)  # different initial weights on purpose: DDP must start every rank from rank 0's
        model = OFAMobileNetV3(space)
        images, labels = random_data(64)
        loader = TensorLoader(images, labels, batch_size=8, seed=1, rank=rank, world_size=world_size)
        big = (max(space.ks),), (max(space.expand),), (max(space.depth),)
        schedule = [Phase("teacher", 1, 0.05, *big),
                    Phase("elastic", 1, 0.05, space.ks, space.expand, space.depth, subnets_per_step=2, kd_ratio=1.0,
                          reorganize_before=True)]
        trainer = Trainer(model, schedule, loader, out, TrainConfig(seed=3, checkpoint_every=0, max_steps_per_phase=3),
                          show_progress=False)
        trainer.run()
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(weights, os.path.join(out, f"weights-rank{rank}.safetensors"))
        with open(os.path.join(out, f"losses-rank{rank}.txt"), "w") as handle:
            handle.write(" ".join(f"{loss:.8f}" for loss in trainer.losses))
    finally:
        dist.destroy_process_group()
