"""``ort-cpu``: onnxruntime's CPUExecutionProvider, full graph optimisation, pinned intra-op threads.

Op and subnet models are written by ``hwnas.formats.onnx_writer`` (the writer the export stage uses), so
a profiled op is the op that is deployed. Each run is timed around ``run_with_iobinding`` with the input
bound once as an OrtValue and the output pre-bound on the CPU: no numpy conversion or feed-dict work
is inside the timed region.

A one-op model differs from the same op inside a network in two ways (measured for issue 4, 1 thread,
ofa-mbv3-w1.0 at 160 px): it pays NCHW↔NCHWc reorders at both borders (6–33 µs per op, ~2x what the
whole network spends on reorders, which keeps them around every squeeze-excite's broadcast Mul), and
its weights stay hot in cache across repeated runs, so its kernels run 0–20% faster than inside the
network (late stages +15–50%, the head's 5 MB Conv_2/Logits ~3x). The second effect dominates: plain
op sums come out 13–21% below whole subnets. Ops are measured as they are; calibration
(``hwnas lut validate``) fits the gap against whole subnets.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnxruntime as ort
from torch import nn

from ...formats.onnx_writer import OPSET, module_to_onnx
from ...space import OpSignature
from .base import BuiltModel, Runner, Target, calibration_inputs, static_op

PROVIDER = "CPUExecutionProvider"

# Intra-op spinning (pool threads busy-wait for the next parallel section instead of sleeping): off by
# default. Measured on this shared 2-core box with 2 threads (5 ofa-mbv3-w1.0 ops at 160 px + one
# subnet, on/off interleaved, twice): the gain from spinning swung with the other tenants' load, from
# ~30% faster op medians (load ~4) to none (load ~2.5: 3 of 5 ops slower, subnet 9% faster), while its
# spread was as wide or wider (op IQR/median up to 0.65 vs 0.45; one subnet run 2.17 vs 0.16, p90
# 15 vs 10 ms): the spinning worker fights other jobs for the second core and is preempted mid-run.
# A LUT needs stable entries, and a busy-waiting profiler slows everyone else. With 1 thread there is
# no pool and the setting changes nothing (equal p10s). A dedicated machine that deploys with
# onnxruntime's default (spinning on) can pass ``spinning=True``.
DEFAULT_SPINNING = False


class OrtRunner(Runner):
    """An InferenceSession with a random input bound once; times ``run_with_iobinding`` per call."""

    def __init__(self, payload: bytes, options: ort.SessionOptions, input_shape: tuple[int, ...],
                 seed: int = 0) -> None:
        self.session = ort.InferenceSession(payload, sess_options=options, providers=[PROVIDER])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
        self._input = ort.OrtValue.ortvalue_from_numpy(x)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(self.input_name, self._input)
        out_shape = self.session.get_outputs()[0].shape
        if all(isinstance(d, int) for d in out_shape):  # pre-allocated: no allocation inside the timing
            self._output = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32)
            self.binding.bind_ortvalue_output(self.output_name, self._output)
        else:
            self.binding.bind_output(self.output_name, "cpu")

    def run_timed(self, n: int) -> np.ndarray:
        run, binding, clock = self.session.run_with_iobinding, self.binding, time.perf_counter_ns
        times = np.empty(int(n), dtype=np.int64)
        for i in range(int(n)):
            start = clock()
            run(binding)
            times[i] = clock() - start
        return times.astype(np.float64) / 1e6

    def output(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: np.asarray(x, dtype=np.float32)})[0]

    def close(self) -> None:
        self.binding = None  # type: ignore[assignment]
        self.session = None  # type: ignore[assignment]


class OrtCpuTarget(Target):
    """onnxruntime on the CPU: ORT_ENABLE_ALL, ``threads`` intra-op threads, 1 inter-op, sequential.

    ``spinning`` sets ``session.intra_op.allow_spinning`` (see ``DEFAULT_SPINNING`` for why it is off).
    ``precision="int8"``: every model is quantised as export quantises ONNX (``formats.quantize.onnx_int8``:
    QDQ, uint8 activations, per-channel int8 weights), float input and output.
    """

    name = "ort-cpu"
    supports_int8 = True

    def __init__(self, threads: int = 1, spinning: bool = DEFAULT_SPINNING, precision: str = "fp32") -> None:
        super().__init__(threads, precision)
        self.spinning = bool(spinning)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if PROVIDER not in ort.get_available_providers():
            return f"onnxruntime {ort.__version__} has no {PROVIDER}"
        return None

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        return options

    def describe(self) -> dict[str, Any]:
        return {
            "name": "onnxruntime", "version": ort.__version__, "provider": PROVIDER, "threads": self.threads,
            "inter_op_threads": 1, "execution_mode": "sequential", "graph_optimization": "all",
            "intra_op_spinning": self.spinning, "opset": OPSET, "precision": self.precision, "layout": "NCHW",
            "timing": "perf_counter_ns around run_with_iobinding",
            **({"quantization": "onnxruntime quantize_static, QDQ, uint8 activations, per-channel int8 weights, "
                                "float input/output (as export writes ONNX int8)"} if self.precision == "int8" else {}),
        }

    def _precision(self, payload: bytes, shape: tuple[int, ...], seed: int) -> bytes:
        if self.precision == "fp32":
            return payload
        from ...formats.quantize import onnx_int8

        return onnx_int8(payload, calibration_inputs(shape, seed))

    def build_op(self, signature: OpSignature, seed: int = 0) -> BuiltModel:
        """One op (``static_op``: the same seeded weights and BN statistics every target profiles), batch 1."""
        shape = (1, signature.in_c, signature.in_hw, signature.in_hw)
        metadata = {"hwnas.kind": "op", "hwnas.signature": signature.key, "hwnas.seed": str(seed)}
        payload = module_to_onnx(static_op(signature, seed), shape, metadata=metadata, dynamic_batch=False)
        return BuiltModel(payload=self._precision(payload, shape, seed), input_shape=shape, suffix=".onnx",
                          info={"key": signature.key})

    def build_subnet(self, subnet: nn.Module, resolution: int) -> BuiltModel:
        """The subnet with its own weights and statistics (not modified); batch 1, ``resolution`` px."""
        shape = (1, 3, int(resolution), int(resolution))
        metadata = {"hwnas.kind": "subnet", "hwnas.resolution": str(int(resolution))}
        payload = module_to_onnx(subnet, shape, metadata=metadata, dynamic_batch=False)
        return BuiltModel(payload=self._precision(payload, shape, int(resolution)), input_shape=shape, suffix=".onnx",
                          info={"resolution": int(resolution)})

    def runner(self, model: BuiltModel) -> Runner:
        return OrtRunner(model.payload, self.session_options(), model.input_shape)
