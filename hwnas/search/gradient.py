"""Gradient-based search inside a trained supernet, with the LUT as a differentiable latency model.

Architecture logits — kernel and expand per block slot, depth per stage, resolution — define
independent categoricals. Each step draws one subnet with straight-through Gumbel-softmax (hard
one-hot forward, soft gradient), runs it on a batch with the supernet's weights frozen, and descends

    task loss  +  latency penalty on E[latency] = hwnas.expected_latency(predictor, softmax(logits))

where the expectation and its gradient are exact and native (nothing is detached: NNI's version
detaches the latency term, so its penalty never reaches the logits). Penalties, with budget ``T``:

- ``add``:   CE + λ · E/T                    (FBNet/ProxylessNAS "add#linear" shape)
- ``mul``:   CE · (E/T)^λ                    (MnasNet/ProxylessNAS multiplicative; in log form,
                                              log-loss gains λ·log(E/T))
- ``hinge``: CE + λ · max(0, E/T − 1)        (only latency above the budget costs)
- ``abs``:   CE + λ · |E/T − 1|              (TuNAS's absolute-value reward: the budget is a target; default)

Why ``abs`` by default: on a supernet whose subnets differ by a few points, the task loss alone barely
prefers larger subnets, and under ``hinge`` nothing pulls the search up to the budget — it settles well
below it. The two-sided penalty holds E[latency] at the budget, which is what "use my latency budget" means.

The Gumbel temperature anneals geometrically from ``tau[0]`` to ``tau[1]``. The expected latency is taken
under softmax(logits / s) with ``s`` annealed from ``sharpen[0]`` to ``sharpen[1]``: at the end it is (nearly)
the latency of the most likely arch, the one returned — without it the penalty holds the *average* subnet at
the budget while the returned arch, on a flat distribution, may be far from it (measured here: +45%). The sampled choices enter
the forward as gates of value 1: a block's residual branch is scaled by the gates of its kernel and
expand choice (and, for slots only its stage's depth choice adds, by that depth's gate), the logits by
the resolution's gate, so the task loss has a gradient with respect to every sampled choice. BatchNorm
uses each batch's statistics (the sampled subnet's own), with running statistics left untouched.
The result is the most likely choice of every categorical.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.datasets import ImageDataset
from ..data.loader import BatchLoader
from ..data.transforms import resize
from ..eval import Preprocessing
from ..latency.expected import expected_latency
from ..latency.predictor import LatencyPredictor
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch

PENALTIES = ("abs", "hinge", "add", "mul")
GROUPS = ("ks", "e", "d", "r")


def latency_penalty(task_loss: torch.Tensor, expected_ms: torch.Tensor, budget_ms: float, kind: str,
                    weight: float) -> torch.Tensor:
    """The search objective from the task loss and the expected latency (see the module docstring)."""
    ratio = expected_ms / budget_ms
    if kind == "add":
        return task_loss + weight * ratio
    if kind == "mul":
        return task_loss * ratio.pow(weight)
    if kind == "hinge":
        return task_loss + weight * F.relu(ratio - 1.0)
    if kind == "abs":
        return task_loss + weight * (ratio - 1.0).abs()
    raise ValueError(f"penalty={kind!r}; choose one of {list(PENALTIES)}")


@dataclass
class GradientSearchResult:
    arch: Arch
    latency_ms: float            # the returned arch's predicted latency
    expected_latency_ms: float   # E[latency] under the final distribution
    logits: dict[str, np.ndarray]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "latency_ms": self.latency_ms,
                "expected_latency_ms": self.expected_latency_ms, "seconds": self.seconds,
                "logits": {k: v.tolist() for k, v in self.logits.items()}, "history": self.history}


class ArchitectureLogits(nn.Module):
    """Logits of the independent categoricals; resolutions the latency table does not serve are masked."""

    def __init__(self, supernet: OFAMobileNetV3, resolution_mask: np.ndarray) -> None:
        super().__init__()
        space = supernet.space
        self.space = space
        self.ks = nn.Parameter(torch.zeros(space.num_blocks, len(space.ks)))
        self.e = nn.Parameter(torch.zeros(space.num_blocks, len(space.expand)))
        self.d = nn.Parameter(torch.zeros(space.num_stages, len(space.depth)))
        self.r = nn.Parameter(torch.zeros(len(space.resolutions)))
        self.register_buffer("r_mask", torch.as_tensor(np.asarray(resolution_mask, dtype=bool)))

    def logits(self) -> dict[str, torch.Tensor]:
        return {"ks": self.ks, "e": self.e, "d": self.d, "r": self.r.masked_fill(~self.r_mask, -math.inf)}

    def probabilities(self, temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Softmax of the logits divided by ``temperature`` (below 1: sharpened towards the most likely arch)."""
        return {group: (logits / temperature).softmax(-1) for group, logits in self.logits().items()}

    def sample(self, tau: float) -> dict[str, torch.Tensor]:
        """Straight-through Gumbel-softmax: hard one-hots forward, soft gradients backward."""
        return {group: F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1) for group, logits in self.logits().items()}

    def decode(self, one_hot: dict[str, torch.Tensor]) -> Arch:
        space = self.space
        index = {group: one_hot[group].argmax(-1).tolist() for group in GROUPS}
        return Arch(ks=[space.ks[i] for i in index["ks"]], e=[space.expand[i] for i in index["e"]],
                    d=[space.depth[i] for i in index["d"]], r=space.resolutions[index["r"]])

    def most_likely(self) -> Arch:
        return self.decode({group: logits.detach() for group, logits in self.logits().items()})


def gated_forward(supernet: OFAMobileNetV3, images: torch.Tensor, arch: Arch, gates: dict[str, torch.Tensor]) -> torch.Tensor:
    """``supernet(images)`` for the active ``arch``, with every sampled choice entering as a gate of value 1."""
    space = supernet.space
    index = {group: gates[group].detach().argmax(-1) for group in GROUPS}
    x = supernet.first_block(supernet.stem(images))
    min_depth = min(space.depth)
    for slot in space.active_slots(arch):
        stage, position = divmod(slot, space.max_depth)
        gate = gates["ks"][slot, index["ks"][slot]] * gates["e"][slot, index["e"][slot]]
        if position >= min_depth:
            gate = gate * gates["d"][stage, index["d"][stage]]
        block = supernet.blocks[slot]
        out = block(x)
        x = x + gate * (out - x) if block.residual else gate * out
    return supernet.head(x) * gates["r"][index["r"]]


def gradient_search(supernet: OFAMobileNetV3, predictor: LatencyPredictor, budget_ms: float, data: ImageDataset,
                    preprocessing: Preprocessing, steps: int = 300, batch_size: int = 64, penalty: str = "abs",
                    weight: float = 5.0, lr: float = 0.05, tau: tuple[float, float] = (5.0, 0.5), seed: int = 0,
                    progress: bool = True, sharpen: tuple[float, float] = (1.0, 0.03)) -> GradientSearchResult:
    """Search ``supernet`` (weights frozen) for the most accurate arch near ``budget_ms`` on ``predictor``'s device.

    ``data`` provides the task loss (hwnas uses the training run's holdout images); Adam on the logits.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty={penalty!r}; choose one of {list(PENALTIES)}")
    if not budget_ms > 0 or steps < 1 or weight < 0 or not (tau[0] >= tau[1] > 0):
        raise ValueError(f"budget_ms={budget_ms} (> 0), steps={steps} (>= 1), weight={weight} (>= 0) and "
                         f"tau={tau} (start >= end > 0) are out of range")
    if predictor.space.content_hash != supernet.space.content_hash:
        raise ValueError(f"the latency predictor is for {predictor.space.name!r}, the supernet for {supernet.space.name!r}")
    from .costs import smallest

    lowest, _ = smallest(predictor)
    if budget_ms < lowest:
        raise ValueError(f"budget {budget_ms:g} ms cannot be met on {predictor.table.metadata.get('device')!r}: "
                         f"the smallest achievable is {lowest:.4g} ms")
    torch.manual_seed(seed)
    device = next(supernet.parameters()).device
    logits = ArchitectureLogits(supernet, predictor.resolution_mask).to(device)
    optimizer = torch.optim.Adam(logits.parameters(), lr=lr)
    if len(data) == 0:
        raise ValueError("gradient_search: no images for the task loss")
    loader = BatchLoader(data, min(batch_size, len(data)), seed=seed, transform=preprocessing.transform())
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    modes = [(m, m.training) for m in supernet.modules()]
    requires = [p.requires_grad for p in supernet.parameters()]
    supernet.requires_grad_(False)
    supernet.train()
    for norm in norms:
        norm.momentum = 0.0  # batch statistics, running statistics unchanged
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    batches = iter(loader)
    try:
        for step in tqdm(range(steps), desc=f"gradient search ({penalty}, {budget_ms:g} ms)", unit="step",
                         disable=not progress):
            batch = next(batches, None)
            if batch is None:
                batches = iter(loader)
                batch = next(batches)
            images, labels = batch
            temperature = tau[0] * (tau[1] / tau[0]) ** (step / max(1, steps - 1))
            gates = logits.sample(temperature)
            arch = logits.decode(gates)
            supernet.set_active(arch)
            x = resize(images.to(device), arch.r).contiguous(memory_format=torch.channels_last)
            task = F.cross_entropy(gated_forward(supernet, x, arch, gates), labels.to(device))
            progress_fraction = step / max(1, steps - 1)
            sharpness = sharpen[0] * (sharpen[1] / sharpen[0]) ** progress_fraction
            expected = expected_latency(predictor, logits.probabilities(sharpness))
            loss = latency_penalty(task, expected, budget_ms, penalty, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append({"step": step, "loss": float(loss.detach()), "task_loss": float(task.detach()),
                            "expected_latency_ms": float(expected.detach()), "tau": temperature})
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes:
            module.training = training
        for parameter, flag in zip(supernet.parameters(), requires):
            parameter.requires_grad_(flag)
    arch = logits.most_likely()
    with torch.no_grad():
        final_expected = float(expected_latency(predictor, logits.probabilities(sharpen[1])))
    return GradientSearchResult(arch, predictor.predict_one(arch), final_expected,
                                {g: t.detach().cpu().numpy() for g, t in logits.logits().items()}, history,
                                time.perf_counter() - start)
