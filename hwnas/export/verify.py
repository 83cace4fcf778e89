"""Check an exported file against the PyTorch subnet: numerics, top-1 agreement, accuracy and latency.

The file runs through the bundle's own ``run.py`` model class (``bundle_run.Model``), so what is verified is
what a board will execute, fed the very float inputs PyTorch saw (normalised and resized by the trainer's
code): differences are the file's, not the preprocessing's. Latency is measured with the profiler's runners
and protocol on the runtime and thread count of the LUT that priced the format, next to its prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..latency.drift import DEFAULT_ANCHORS, speed_factor, validation_anchors, validation_subnets
from ..latency.profiler import DEFAULT_PASSES
from ..latency.protocol import Protocol, measure
from ..space import SearchSpace
from .bundle_run import Model
from .subnet import PreparedSubnet

FP32_MAX_ABS_DIFF = 1e-4
INT8_MIN_TOP1_AGREEMENT = 0.98


@dataclass(frozen=True)
class Reference:
    """PyTorch's view of the verification images: inputs (NHWC float32), logits and labels."""

    inputs_nhwc: np.ndarray
    logits: np.ndarray
    labels: np.ndarray


def reference(subnet: PreparedSubnet, images: np.ndarray, labels: np.ndarray, n_logits: int | None = None) -> Reference:
    """Normalised, resized inputs for uint8 NHWC ``images`` and the PyTorch subnet's logits for the first
    ``n_logits`` of them (None: all): the files are compared with PyTorch on those and counted on all."""
    nchw = subnet.inputs_nchw(images)
    logits = subnet.forward(nchw[:n_logits] if n_logits is not None else nchw)
    return Reference(np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)), logits, np.asarray(labels))


def file_logits(path: str, inputs_nhwc: np.ndarray, threads: int) -> np.ndarray:
    """Logits of an exported file (any of the four formats) on NHWC float inputs."""
    return Model(path, threads=threads).logits(inputs_nhwc)


def compare(path: str, ref: Reference, int8: bool, n_numeric: int, n_agreement: int, threads: int,
            limit: int | None = None) -> dict[str, Any]:
    """``max_abs_diff`` on the first ``n_numeric`` images, ``top1_agreement`` on the first ``n_agreement`` (at
    most those PyTorch has logits for), ``test_acc`` on all of them (the first ``limit`` only, when given);
    ``passed`` by the fp32 or int8 criterion."""
    if limit is not None:
        ref = Reference(ref.inputs_nhwc[:limit], ref.logits[:limit], ref.labels[:limit])
    logits = file_logits(path, ref.inputs_nhwc, threads)
    if logits.shape[1:] != ref.logits.shape[1:] or len(logits) != len(ref.labels):
        raise ValueError(f"{path}: output shape {logits.shape} differs from PyTorch's {(len(ref.labels), *ref.logits.shape[1:])}")
    n_numeric, n_agreement = min(n_numeric, len(ref.logits)), min(n_agreement, len(ref.logits))
    diff = float(np.max(np.abs(logits[:n_numeric] - ref.logits[:n_numeric]))) if n_numeric else float("nan")
    agreement = float(np.mean(logits[:n_agreement].argmax(1) == ref.logits[:n_agreement].argmax(1)))
    result: dict[str, Any] = {
        "max_abs_diff": diff, "max_abs_diff_images": n_numeric, "top1_agreement": agreement,
        "top1_agreement_images": n_agreement, "test_acc": float(np.mean(logits.argmax(1) == ref.labels)),
        "test_images": int(len(logits)),
    }
    if int8:
        result["passed"] = agreement >= INT8_MIN_TOP1_AGREEMENT
        result["criterion"] = f"top1_agreement >= {INT8_MIN_TOP1_AGREEMENT}"
    else:
        result["passed"] = diff <= FP32_MAX_ABS_DIFF
        result["criterion"] = f"max_abs_diff <= {FP32_MAX_ABS_DIFF:g}"
    return result


@dataclass(frozen=True)
class TimedFile:
    """Model bytes to time: ``fmt`` picks the runtime (``onnx*`` → onnxruntime, ``tflite*`` → LiteRT)."""

    key: str
    data: bytes
    fmt: str
    resolution: int
    threads: int


def _runner(item: TimedFile) -> Any:
    from ..latency.targets.ort_cpu import OrtCpuTarget, OrtRunner
    from ..latency.targets.tflite import TfliteRunner

    if item.fmt.startswith("onnx"):
        return OrtRunner(item.data, OrtCpuTarget(item.threads).session_options(),
                         (1, 3, item.resolution, item.resolution))
    return TfliteRunner(item.data, threads=item.threads)


def measure_files(items: list[TimedFile], passes: int = DEFAULT_PASSES, seed: int = 0) -> dict[str, dict[str, Any]]:
    """End-to-end latency (ms, batch 1) of every file, the profiler's way: ``passes`` interleaved rounds in a
    shuffled order, a fresh session each time, the lowest clipped mean kept (noise on a shared CPU only adds).

    As many passes as the profiler and the LUT validation take by default, so the measured figure is the
    same statistic the calibrated prediction was fitted to (the lowest of fewer passes reads higher)."""
    means: dict[str, list[float]] = {item.key: [] for item in items}
    unstable: dict[str, bool] = {item.key: False for item in items}
    rng = np.random.default_rng(seed)
    for _ in range(max(1, passes)):
        for index in rng.permutation(len(items)):
            item = items[int(index)]
            with _runner(item) as runner:
                result = measure(runner, Protocol())
            means[item.key].append(result.mean)
            unstable[item.key] = unstable[item.key] or result.unstable
    return {item.key: {"measured_latency_ms": float(min(means[item.key])), "passes": len(means[item.key]),
                       "unstable": unstable[item.key], "threads": item.threads} for item in items}


def measure_file(data: bytes, fmt: str, resolution: int, threads: int, passes: int = DEFAULT_PASSES) -> dict[str, Any]:
    """``measure_files`` for one file."""
    return measure_files([TimedFile("file", data, fmt, resolution, threads)], passes)["file"]


@dataclass(frozen=True)
class Anchor:
    """One validation subnet to re-time: its file key, the latency validation measured, and the model bytes."""

    key: str
    then_ms: float
    item: TimedFile


def anchors_for(space: SearchSpace, lut_path: str | Path, fmt: str, target_name: str, threads: int,
                predicted_ms: float, k: int = DEFAULT_ANCHORS) -> list[Anchor]:
    """The anchors as files to time beside an exported ``fmt`` file, built exactly as validation built them."""
    from ..latency.targets import get_target
    from ..latency.targets.base import static_subnet

    chosen = validation_anchors(space, validation_subnets(space, lut_path), predicted_ms, k) if k > 0 else []
    if not chosen:
        return []
    target = get_target(target_name, threads)
    anchors = []
    for index, arch, then_ms in chosen:
        built = target.build_subnet(static_subnet(space.signatures(arch), seed=index), arch.r)  # as validation did
        key = f"anchor/{fmt}/{lut_path}/{index}"  # the same validation subnet of the same LUT: the same file
        anchors.append(Anchor(key, then_ms, TimedFile(key, built.payload, fmt, arch.r, threads)))
    return anchors


def speed_now(anchors: list[Anchor], measured: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """``speed_factor`` of exported-file anchors timed by ``measure_files``."""
    return speed_factor([measured[a.key]["measured_latency_ms"] for a in anchors], [a.then_ms for a in anchors])
