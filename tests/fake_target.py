"""A deterministic stand-in runtime: 'latency' is a function of the op's MACs plus small noise.

Used where a test is about bookkeeping (journal, resume, calibration fitting), not about a runtime.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from hwnas.latency.targets.base import BuiltModel, Runner, Target


class FakeRunner(Runner):
    def __init__(self, cost_ms: float, seed: int, sleep_s: float) -> None:
        self.cost_ms = cost_ms
        self.rng = np.random.default_rng(seed)
        self.sleep_s = sleep_s

    def run_timed(self, n: int) -> np.ndarray:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return self.cost_ms * (1 + 0.01 * self.rng.standard_normal(n).clip(-2, 2))

    def output(self, x: np.ndarray) -> np.ndarray:
        return x


class FakeTarget(Target):
    name = "fake"

    def __init__(self, threads: int = 1, sleep_s: float = 0.0, boundary_ms: float = 0.0) -> None:
        super().__init__(threads)
        self.sleep_s = sleep_s
        self.boundary_ms = boundary_ms  # what a standalone op pays that a whole network does not

    def describe(self) -> dict[str, Any]:
        return {"name": "fake", "version": "1", "provider": None, "threads": self.threads}

    def build_op(self, signature, seed: int = 0) -> BuiltModel:
        return BuiltModel(1e-6 * signature.macs + 0.01 + self.boundary_ms, (1,), ".fake", {"seed": seed})

    def build_subnet(self, subnet, resolution: int) -> BuiltModel:
        ops = subnet.signatures(resolution)
        return BuiltModel(sum(1e-6 * sig.macs + 0.01 for sig in ops), (1,), ".fake")

    def runner(self, model: BuiltModel) -> Runner:
        return FakeRunner(model.payload, int(model.payload * 1e6) % 2**31, self.sleep_s)
