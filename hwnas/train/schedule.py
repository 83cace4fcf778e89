"""Progressive-shrinking schedules: which choices each phase may sample, for how long, at what LR.

OFA trains the full network first (it becomes the distillation teacher), then opens the space one
dimension at a time — kernel, depth, expand ratio — so that large subnets are not disturbed by small
ones before those have a reasonable starting point. Depth and expand open in two stages (the top two
choices first, then all); channels are sorted by importance before expand ratios shrink, so smaller
widths keep the most important channels. Resolution is sampled per batch from the space in every phase.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..space.arch import Arch
from ..space.base import SearchSpace

SCHEDULES = ("quick", "standard")
PHASE_NAMES = ("teacher", "kernel", "depth-1", "depth-2", "expand-1", "expand-2")


@dataclass(frozen=True)
class Phase:
    """One stage of progressive shrinking: the choices it samples from and its optimisation settings.

    ``epochs`` may be fractional (a phase of 0.5 epochs runs half an epoch's batches); the LR follows a
    cosine from ``lr`` to 0 over the phase after ``warmup_epochs`` of linear warm-up. ``with_largest`` and
    ``with_smallest`` put the phase's largest and smallest subnets first among the step's subnets (BigNAS's
    "sandwich" bounds): uniform sampling almost never draws either extreme, so without them both are trained
    only through the weights they share, and the largest drifts away from the teacher it was.

    ``bounds_at_extreme_resolutions`` trains those bounds where they are deployed as the extremes of the space
    (BigNAS): the largest at the space's highest resolution and the smallest at its lowest, the uniform draws at
    the step's sampled one. ``distil_from_largest`` (BigNAS's in-place distillation) takes the soft targets from
    the step's own largest subnet (detached) instead of the frozen teacher, which then never runs in this phase.
    """

    name: str
    epochs: float
    lr: float
    ks: tuple[int, ...]
    expand: tuple[int | float, ...]
    depth: tuple[int, ...]
    subnets_per_step: int = 1
    kd_ratio: float = 0.0
    reorganize_before: bool = False
    warmup_epochs: float = 0.0
    with_smallest: bool = False
    with_largest: bool = False
    bounds_at_extreme_resolutions: bool = False
    distil_from_largest: bool = False

    def __post_init__(self) -> None:
        if not self.epochs > 0 or self.subnets_per_step < 1:
            raise ValueError(f"phase {self.name!r}: epochs={self.epochs} must be > 0 and subnets_per_step="
                             f"{self.subnets_per_step} >= 1")
        if not (self.lr > 0 and self.kd_ratio >= 0 and 0 <= self.warmup_epochs < self.epochs):
            raise ValueError(f"phase {self.name!r}: lr={self.lr} must be > 0, kd_ratio={self.kd_ratio} >= 0 and "
                             f"warmup_epochs={self.warmup_epochs} in [0, epochs={self.epochs})")
        if not (self.ks and self.expand and self.depth):
            raise ValueError(f"phase {self.name!r}: ks, expand and depth each need at least one choice")
        fixed = int(self.with_largest) + int(self.with_smallest)
        if fixed and self.subnets_per_step < fixed + 1:
            raise ValueError(f"phase {self.name!r}: with_largest/with_smallest need subnets_per_step >= {fixed + 1} "
                             f"(got {self.subnets_per_step}): the fixed subnets alone would replace the random ones")
        if self.bounds_at_extreme_resolutions and not fixed:
            raise ValueError(f"phase {self.name!r}: bounds_at_extreme_resolutions needs with_largest or with_smallest")
        if self.distil_from_largest and not (self.with_largest and self.kd_ratio > 0):
            raise ValueError(f"phase {self.name!r}: distil_from_largest needs with_largest and kd_ratio > 0 "
                             f"(got with_largest={self.with_largest}, kd_ratio={self.kd_ratio})")

    def check(self, space: SearchSpace) -> Phase:
        """Return the phase if its choices are all the space's, else ValueError naming the field."""
        for label, values, allowed in (("ks", self.ks, space.ks), ("expand", self.expand, space.expand),
                                       ("depth", self.depth, space.depth)):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"phase {self.name!r}: {label} {bad} not in {space.name} choices {list(allowed)}")
        return self

    def sample(self, space: SearchSpace, rng: np.random.Generator, r: int) -> Arch:
        """A subnet at resolution ``r`` drawn uniformly, per slot and stage, from this phase's choices."""
        B, G = space.num_blocks, space.num_stages
        pick = lambda values, n: [values[i] for i in rng.integers(0, len(values), n)]  # noqa: E731
        return Arch(ks=pick(self.ks, B), e=pick(self.expand, B), d=pick(self.depth, G), r=r)

    def smallest(self, space: SearchSpace, r: int) -> Arch:
        """The phase's smallest subnet at resolution ``r``: its minimum kernel, expand and depth everywhere."""
        return self._same_everywhere(space, r, min)

    def largest(self, space: SearchSpace, r: int) -> Arch:
        """The phase's largest subnet at resolution ``r``: its maximum kernel, expand and depth everywhere."""
        return self._same_everywhere(space, r, max)

    def _same_everywhere(self, space: SearchSpace, r: int, pick: Callable[[Sequence], Any]) -> Arch:
        """The subnet that takes ``pick`` (min or max) of this phase's kernel, expand and depth choices everywhere."""
        return Arch(ks=[pick(self.ks)] * space.num_blocks, e=[pick(self.expand)] * space.num_blocks,
                    d=[pick(self.depth)] * space.num_stages, r=r)

    def step_archs(self, space: SearchSpace, rng: np.random.Generator, r: int) -> list[Arch]:
        """The ``subnets_per_step`` subnets of one step: the largest and smallest first where the phase says so,
        the rest uniform draws at ``r`` (the bounds too, unless they take the space's extreme resolutions)."""
        extremes = self.bounds_at_extreme_resolutions
        first = ([self.largest(space, max(space.resolutions) if extremes else r)] if self.with_largest else []) + \
                ([self.smallest(space, min(space.resolutions) if extremes else r)] if self.with_smallest else [])
        return first + [self.sample(space, rng, r) for _ in range(self.subnets_per_step - len(first))]

    def steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps this phase runs when an epoch has ``steps_per_epoch`` batches (at least 1)."""
        return max(1, round(self.epochs * steps_per_epoch))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _top(values: Sequence, n: int) -> tuple:
    return tuple(sorted(values)[-n:])


# Per schedule: epochs, peak LR and subnets per step of the six phases, the teacher's warm-up epochs and the
# random-crop padding (pixels; 0 = flips only: a few epochs underfit, and cropping only slows them down).
# LRs are for batch 128 (SGD Nesterov); `hwnas train` scales them linearly with the global batch.
# quick: 4.5 epochs in all: the demo takes minutes on a laptop CPU, full CIFAR-10 ~23 min on 2 cores.
# standard: OFA's shape (long teacher, short first stages of depth and expand) with the longest elastic phase
# last, where the smallest subnets are trained at all. That phase runs BigNAS's sandwich (largest + smallest +
# 1 uniform), its bounds at the space's extreme resolutions, distilled in place from the largest: the A/B that
# chose it is docs/experiments/sandwich_bounds.md, the epochs per phase docs/experiments/standard_schedule_epochs.md
# (the teacher's epochs set the largest's ceiling, the last phase's the smallest's). Measured: 170.6 min on a
# 2-core Intel Xeon VM, test accuracy largest 85.86%, middle 82.76%, smallest 78.39% (benchmarks/RESULTS.md).
_SETTINGS = {
    "quick": {"epochs": (2.4, 0.4, 0.15, 0.45, 0.2, 0.9), "lrs": (0.2, 0.06, 0.04, 0.06, 0.04, 0.06),
              "subnets": (1, 1, 2, 2, 2, 2), "warmup": 0.25, "crop_padding": 0, "last_phase": {}},
    "standard": {"epochs": (16, 1, 1, 1, 1, 16), "lrs": (0.2, 0.06, 0.03, 0.05, 0.03, 0.05),
                 "subnets": (1, 1, 2, 2, 2, 3), "warmup": 1.0, "crop_padding": 4,
                 "last_phase": {"with_largest": True, "with_smallest": True, "bounds_at_extreme_resolutions": True,
                                "distil_from_largest": True}},
}


def check_epochs(epochs: Sequence[float]) -> tuple[float, ...]:
    """``epochs`` as one positive, finite number per phase, or a ValueError naming what is wrong."""
    values = tuple(float(e) for e in epochs)
    if len(values) != len(PHASE_NAMES):
        raise ValueError(f"epochs={list(epochs)}: give {len(PHASE_NAMES)} numbers, one per phase ({', '.join(PHASE_NAMES)})")
    bad = [e for e in values if not (math.isfinite(e) and e > 0)]
    if bad:
        raise ValueError(f"epochs={list(epochs)}: {bad[0]} is not a positive number of epochs")
    return values


def _settings(name: str) -> dict:
    """The settings of the schedule ``name``, or a ValueError naming it and the schedules there are."""
    if name not in _SETTINGS:
        raise ValueError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)}")
    return _SETTINGS[name]


def schedule_epochs(name: str) -> tuple[float, ...]:
    """The six phases' epochs the schedule ``name`` runs unless ``--epochs`` replaces them."""
    return tuple(float(e) for e in _settings(name)["epochs"])


def crop_padding(name: str) -> int:
    """Random-crop padding (pixels) the schedule ``name`` trains with; horizontal flips are always on."""
    return int(_settings(name)["crop_padding"])


def make_schedule(space: SearchSpace, name: str = "quick", epochs: Sequence[float] | None = None) -> list[Phase]:
    """OFA's phases for ``space``: teacher → kernel → depth (2 stages) → expand (2 stages).

    Every phase after the teacher distils from it (``kd_ratio`` 1, as OFA); channels are reorganised
    before the first expand phase; where the schedule says so, the last phase trains the largest and/or
    smallest subnet every step (at the space's extreme resolutions, distilling from the largest in place).
    ``epochs`` (one per phase, in that order) replaces the schedule's own, to spend a budget differently.
    """
    settings = dict(_settings(name))
    if epochs is not None:
        settings["epochs"] = check_epochs(epochs)
    ks, ex, dp = tuple(space.ks), tuple(space.expand), tuple(space.depth)
    big_k, big_e, big_d = (max(ks),), (max(ex),), (max(dp),)
    specs = [  # name, ks, expand, depth, kd_ratio, reorganize_before (names: PHASE_NAMES)
        ("teacher", big_k, big_e, big_d, 0.0, False),
        ("kernel", ks, big_e, big_d, 1.0, False),
        ("depth-1", ks, big_e, _top(dp, 2), 1.0, False),
        ("depth-2", ks, big_e, dp, 1.0, False),
        ("expand-1", ks, _top(ex, 2), dp, 1.0, True),
        ("expand-2", ks, ex, dp, 1.0, False),
    ]
    return [
        Phase(name=n, epochs=e, lr=lr, ks=k, expand=x, depth=d, subnets_per_step=s, kd_ratio=kdr,
              reorganize_before=reorg, warmup_epochs=settings["warmup"] if i == 0 else 0.0,
              **(settings["last_phase"] if i == len(specs) - 1 else {})).check(space)
        for i, ((n, k, x, d, kdr, reorg), e, lr, s) in enumerate(
            zip(specs, settings["epochs"], settings["lrs"], settings["subnets"]))
    ]
