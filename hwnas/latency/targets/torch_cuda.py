"""``torch-cuda``: PyTorch eager on a CUDA GPU, timed with CUDA events.

cuDNN autotuning (``cudnn.benchmark``) runs during the runner's own warm-up so timed runs use the chosen
algorithms; every timed run is bracketed by events and the device is synchronised before reading them.
Skips cleanly (``unavailable_reason``) on machines without a GPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...space import OpSignature
from .base import BuiltModel, Runner, Target, static_op


class TorchCudaTarget(Target):
    name = "torch-cuda"

    def __init__(self, threads: int = 1, device: int = 0, precision: str = "fp32") -> None:
        super().__init__(threads, precision)
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"torch-cuda target unavailable: {reason}")
        self.device = torch.device("cuda", device)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if torch.cuda.is_available() else "no CUDA device (torch.cuda.is_available() is False)"

    def describe(self) -> dict[str, Any]:
        props = torch.cuda.get_device_properties(self.device)
        return {"name": "torch", "version": torch.__version__, "provider": f"CUDA {torch.version.cuda}",
                "threads": self.threads, "device": props.name, "cudnn": torch.backends.cudnn.version(),
                "memory_gib": round(props.total_memory / 2**30, 1), "timer": "cuda events"}

    def build_op(self, signature: OpSignature, seed: int = 0) -> BuiltModel:
        return BuiltModel(static_op(signature, seed), (1, signature.in_c, signature.in_hw, signature.in_hw), ".pt")

    def build_subnet(self, subnet: nn.Module, resolution: int) -> BuiltModel:
        return BuiltModel(subnet.eval(), (1, 3, resolution, resolution), ".pt")

    def runner(self, model: BuiltModel) -> Runner:
        return CudaRunner(model.payload, model.input_shape, self.device)


class CudaRunner(Runner):
    """A module on the GPU with a bound random input; autotunes once, then times with CUDA events."""

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], device: torch.device,
                 autotune_runs: int = 5) -> None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        torch.backends.cudnn.benchmark = True
        self.module = module.to(device).eval()
        self.input = torch.randn(*input_shape, device=device)
        with torch.inference_mode():
            for _ in range(autotune_runs):
                self.module(self.input)
        torch.cuda.synchronize(device)

    def run_timed(self, n: int) -> np.ndarray:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        with torch.inference_mode():
            for start, end in events:
                start.record()
                self.module(self.input)
                end.record()
        torch.cuda.synchronize()
        return np.array([start.elapsed_time(end) for start, end in events], dtype=np.float64)

    def output(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(np.asarray(x, np.float32)).to(self.input.device)).cpu().numpy()
