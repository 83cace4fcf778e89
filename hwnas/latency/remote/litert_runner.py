"""One LiteRT interpreter, ready to time: numpy and a TFLite runtime are all it needs.

Shared by the local ``tflite`` target and, copied verbatim as ``hwnas_litert.py``, by the board runner of
remote bundles, so a Raspberry Pi times ops exactly as this machine does. Uses ``ai_edge_litert`` and
falls back to ``tflite_runtime`` where that is what the board has.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def _interpreter_module() -> tuple[Any, str]:
    try:
        from ai_edge_litert import interpreter as module

        return module, "ai_edge_litert"
    except ImportError:
        from tflite_runtime import interpreter as module  # type: ignore[import-not-found,no-redef]

        return module, "tflite_runtime"


def runtime_description() -> dict[str, Any]:
    """Which TFLite runtime and version this process uses."""
    module, package = _interpreter_module()
    try:
        from importlib.metadata import version

        release = version("ai-edge-litert" if package == "ai_edge_litert" else "tflite-runtime")
    except Exception:  # noqa: BLE001 - informative only
        release = "unknown"
    return {"name": "litert" if package == "ai_edge_litert" else "tflite_runtime", "package": package,
            "version": release, "provider": "XNNPACK"}


class LiteRTRunner:
    """An interpreter with tensors allocated and a random input set once; times ``invoke()`` per run."""

    def __init__(self, payload: bytes, threads: int = 1, xnnpack: bool = True, seed: int = 0) -> None:
        module, _ = _interpreter_module()
        kwargs: dict[str, Any] = {}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._payload = payload  # the interpreter reads the flatbuffer in place: keep it alive
        self.interpreter = module.Interpreter(model_content=payload, num_threads=threads, **kwargs)
        self.interpreter.allocate_tensors()
        (inp,), (out,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape = tuple(int(v) for v in inp["shape"])
        self.input_dtype = np.dtype(inp["dtype"])
        rng = np.random.default_rng(seed)
        if self.input_dtype.kind == "f":
            x = rng.standard_normal(self.input_shape).astype(self.input_dtype)
        else:  # a quantised model (int8 input): random codes over the whole range
            info = np.iinfo(self.input_dtype)
            x = rng.integers(info.min, info.max, self.input_shape, endpoint=True).astype(self.input_dtype)
        self.interpreter.set_tensor(self.input_index, x)

    def delegation(self) -> dict[str, Any]:
        """How the graph was partitioned: ``fully_delegated`` when one delegate node runs input → output."""
        nodes = self.interpreter._get_ops_details()  # noqa: SLF001 - no public API lists the execution plan
        delegates = [node for node in nodes if node["op_name"] == "DELEGATE"]
        builtin = [node["op_name"] for node in nodes if node["op_name"] != "DELEGATE"]
        full = (len(delegates) == 1 and list(delegates[0]["outputs"]) == [self.output_index]
                and self.input_index in list(delegates[0]["inputs"]))
        return {"delegate_nodes": len(delegates), "ops": builtin, "fully_delegated": full}

    def run_timed(self, n: int) -> np.ndarray:
        native = getattr(self.interpreter, "_interpreter", None)  # skip the Python wrapper's per-call check
        invoke = getattr(native, "Invoke", None) or self.interpreter.invoke
        clock = time.perf_counter_ns
        times = np.empty(n, dtype=np.int64)
        for i in range(n):
            start = clock()
            invoke()
            times[i] = clock() - start
        return times.astype(np.float64) / 1e6

    def output(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} != model input {self.input_shape} (NHWC)")
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()

    def close(self) -> None:
        self.interpreter = None  # type: ignore[assignment]
