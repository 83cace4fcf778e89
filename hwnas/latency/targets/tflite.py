"""``tflite``: LiteRT (``ai_edge_litert``) with its default XNNPACK delegate, threads pinned.

Models are written by hwnas's own flatbuffer writer (``hwnas.formats.tflite_writer``), so each profiled
op is exactly the TFLite subgraph that a deployed subnet contains. XNNPACK is applied by LiteRT's
default op resolver; ``TfliteRunner.delegation()`` shows that the whole graph became one delegate node
(``xnnpack=False`` selects ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, LiteRT's own kernels, for comparison).

Each run is timed with ``time.perf_counter_ns`` around the interpreter's native ``Invoke`` (the call
``Interpreter.invoke()`` makes after a Python-side safety check worth ~0.3 µs). A timed run thus
includes LiteRT's per-invoke overhead, ~0.4 µs on this CPU (an AvgPool on 1×1×8): a whole subnet pays
it once, a sum of per-op models once per op — negligible next to real ops, and absorbed by calibration.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ...formats.tflite_writer import module_to_tflite
from ...space import OpSignature
from ..remote.litert_runner import LiteRTRunner
from .base import BuiltModel, Runner, Target, calibration_inputs, static_op

RUNTIME_NAME = "litert"


def _litert_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - the version is informative only
        import ai_edge_litert

        return str(getattr(ai_edge_litert, "__version__", "unknown"))


class TfliteTarget(Target):
    """LiteRT's interpreter on this CPU; XNNPACK unless ``xnnpack=False`` (the builtin kernels, for comparison).

    ``precision="int8"``: full-integer models, quantised as export quantises static TFLite (h-swish as
    ADD/MUL, ai-edge-quantizer ``static_wi8_ai8``): int8 input and output, so an op is timed as it runs
    inside an int8 subnet, between int8 neighbours.
    """

    name = "tflite"
    supports_int8 = True

    def __init__(self, threads: int = 1, xnnpack: bool = True, precision: str = "fp32") -> None:
        super().__init__(threads, precision)
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"tflite target unavailable: {reason}")
        self.xnnpack = xnnpack

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        except ImportError as error:
            return f"ai_edge_litert is not importable ({error}); pip install ai-edge-litert"
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": RUNTIME_NAME, "version": _litert_version(),
                "provider": "XNNPACK" if self.xnnpack else "builtin (no delegate)", "threads": self.threads,
                "precision": self.precision, "layout": "NHWC", "batch": 1,
                "timer": "time.perf_counter_ns around the native Invoke",
                "format": "hwnas tflite_writer (schema v3)",
                "caveat": "each timed run includes LiteRT's per-invoke overhead (sub-µs per model)",
                **({"quantization": "full integer (ai-edge-quantizer static_wi8_ai8, h-swish as ADD/MUL), "
                                    "int8 input/output (as export writes static TFLite)"}
                   if self.precision == "int8" else {})}

    def _write(self, module: nn.Module, shape_nchw: tuple[int, ...], seed: int) -> bytes:
        if self.precision == "fp32":
            return module_to_tflite(module, shape_nchw)
        from ...formats.quantize import tflite_int8

        fp32 = module_to_tflite(module, shape_nchw, decompose_hard_swish=True)
        return tflite_int8(fp32, calibration_inputs(shape_nchw, seed).transpose(0, 2, 3, 1), mode="static")

    def build_op(self, signature: OpSignature, seed: int = 0) -> BuiltModel:
        op = static_op(signature, seed)
        shape_nchw = (1, signature.in_c, signature.in_hw, signature.in_hw)
        return BuiltModel(self._write(op, shape_nchw, seed), (1, signature.in_hw, signature.in_hw, signature.in_c),
                          ".tflite", {"key": signature.key})

    def build_subnet(self, subnet: nn.Module, resolution: int) -> BuiltModel:
        if subnet.training:
            subnet = subnet.eval()
        return BuiltModel(self._write(subnet, (1, 3, resolution, resolution), resolution),
                          (1, resolution, resolution, 3), ".tflite", {"resolution": resolution})

    def runner(self, model: BuiltModel) -> TfliteRunner:
        return TfliteRunner(model.payload, threads=self.threads, xnnpack=self.xnnpack)


class TfliteRunner(LiteRTRunner, Runner):
    """One LiteRT interpreter with tensors allocated and a random NHWC input set once.

    The implementation is ``hwnas.latency.remote.litert_runner`` (numpy-only), the very code that remote
    bundles ship to boards, so local and remote op timings come from the same loop.
    """
