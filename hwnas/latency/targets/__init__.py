"""Measured runtimes, one module each; ``get_target(name, threads)`` imports only the one asked for."""
from __future__ import annotations

from importlib import import_module

from .base import PRECISIONS, BuiltModel, Runner, Target, host_description

_TARGETS = {
    "ort-cpu": ("hwnas.latency.targets.ort_cpu", "OrtCpuTarget"),
    "tflite": ("hwnas.latency.targets.tflite", "TfliteTarget"),
    "torch-cuda": ("hwnas.latency.targets.torch_cuda", "TorchCudaTarget"),
}


def target_names() -> list[str]:
    return list(_TARGETS)


def target_class(name: str) -> type[Target]:
    if name not in _TARGETS:
        raise ValueError(f"unknown target {name!r}; available: {target_names()}")
    module, attr = _TARGETS[name]
    return getattr(import_module(module), attr)


def get_target(name: str, threads: int = 1, precision: str = "fp32") -> Target:
    """An instance of target ``name`` measuring ``precision`` models; raises RuntimeError saying why when it
    cannot run here, ValueError for a precision it has no models for."""
    cls = target_class(name)
    reason = cls.unavailable_reason()
    if reason:
        raise RuntimeError(f"target {name!r} cannot run here: {reason}")
    return cls(threads=threads, precision=precision)


__all__ = ["PRECISIONS", "BuiltModel", "Runner", "Target", "get_target", "target_class", "target_names", "host_description"]
