"""What every measured runtime offers: build a model for one op or a whole subnet, run it, describe itself.

A target never decides how long to measure: it exposes ``Runner.run_timed(n)`` (n inferences, each
timed with the runtime's own clock) and the shared protocol (``hwnas.latency.protocol``) decides how
many runs are enough. The op models come from the same static modules an extracted subnet is made of.
"""
from __future__ import annotations

import abc
import os
import platform
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import nn

from ...space import OpSignature
from ..table import PRECISIONS


@dataclass
class BuiltModel:
    """A runnable model for one target: ``payload`` is bytes (ONNX, TFLite) or an object (torch)."""

    payload: Any
    input_shape: tuple[int, ...]
    suffix: str
    info: dict[str, Any] = field(default_factory=dict)


class Runner(abc.ABC):
    """One loaded model with its input bound; runs inference and times each run in milliseconds."""

    @abc.abstractmethod
    def run_timed(self, n: int) -> np.ndarray:
        """Run ``n`` inferences back to back; float64 ``[n]`` of per-run latency in ms."""

    @abc.abstractmethod
    def output(self, x: np.ndarray) -> np.ndarray:
        """Run once on ``x`` (the target's input layout) and return the first output (for verification)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most runners have nothing to release
        """Release the session/interpreter; the default has nothing to release."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


CALIBRATION_SAMPLES = 8  # seeded random inputs that set an int8 model's ranges (see calibration_inputs)


def calibration_inputs(shape_nchw: tuple[int, ...], seed: int) -> np.ndarray:
    """``CALIBRATION_SAMPLES`` seeded standard-normal NCHW inputs for quantising a model that is only timed.

    Latency does not depend on where the ranges fall: the quantised graph, its kernels and shapes are the
    same as those of a file calibrated on training images (export); only scales and zero points differ."""
    return np.random.default_rng(seed).standard_normal((CALIBRATION_SAMPLES, *shape_nchw[1:])).astype(np.float32)


class Target(abc.ABC):
    """A runtime on this machine that latency can be measured on (``ort-cpu``, ``tflite``, ``torch-cuda``).

    ``precision`` is what its models compute in: ``fp32``, or ``int8`` (each op and subnet quantised as export
    quantises it) where the target supports it (``supports_int8``)."""

    name: ClassVar[str]
    supports_int8: ClassVar[bool] = False
    precision: str = "fp32"  # set per instance; the remote bundle/adb builders skip __init__ and build fp32

    def __init__(self, threads: int = 1, precision: str = "fp32") -> None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1 (pin the thread count explicitly)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; choose one of {list(PRECISIONS)}")
        if precision == "int8" and not self.supports_int8:
            raise ValueError(f"target {self.name!r} has no int8 models; int8 is profiled on "
                             "ort-cpu (QDQ) and tflite (full integer)")
        self.threads = threads
        self.precision = precision

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the runtime can be used here, else why not (e.g. 'no CUDA device')."""
        return None

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Runtime metadata for the LUT: name, version, provider/delegate, threads (+ anything specific)."""

    @abc.abstractmethod
    def build_op(self, signature: OpSignature, seed: int = 0) -> BuiltModel:
        """A model holding exactly one op with this signature (random weights, realistic BN statistics)."""

    @abc.abstractmethod
    def build_subnet(self, subnet: nn.Module, resolution: int) -> BuiltModel:
        """A model of a whole static subnet (``hwnas.nn.StaticSubnet``) at this input resolution."""

    @abc.abstractmethod
    def runner(self, model: BuiltModel) -> Runner:
        """Load ``model`` into the runtime with a random input bound."""


def cpu_model() -> str:
    """The CPU's marketing name, for LUT metadata."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_description() -> dict[str, Any]:
    """Where a measurement ran: CPU, core count, OS, load average at the moment of asking."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
            "machine": platform.machine(), "python": platform.python_version(), "load_avg": [round(v, 2) for v in load]}


def randomize_batchnorm(module: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (trained-network-like values)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                size = layer.num_features
                layer.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                layer.running_var.copy_(torch.rand(size, generator=generator) * 0.5 + 0.75)
                layer.weight.copy_(torch.rand(size, generator=generator) * 0.5 + 0.75)
                layer.bias.copy_(torch.randn(size, generator=generator) * 0.1)
    return module.eval()


def static_op(signature: OpSignature, seed: int = 0) -> nn.Module:
    """The static module for one op with seeded random weights and BN statistics, in eval mode."""
    import torch

    from ...nn.static_blocks import create_op

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        op = create_op(signature)
    return randomize_batchnorm(op, seed)


def static_subnet(signatures: list[OpSignature], seed: int = 0) -> nn.Module:
    """A whole subnet assembled from ops with these signatures (random weights): what latency is measured on."""
    from ...nn.static_blocks import StaticSubnet

    return StaticSubnet(*(static_op(sig, seed + i) for i, sig in enumerate(signatures))).eval()
