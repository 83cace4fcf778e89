"""The fp32 model files, written by hwnas's own ONNX and TFLite writers with the deployment facts inside.

The same writers built every op the profiler timed, so the deployed file holds exactly the ops the LUT
priced. ONNX: opset ``OPSET``, NCHW float32 input, batch 1. TFLite: schema v3, NHWC float32 input, batch 1.
Both carry ``hwnas.*`` metadata (ONNX ``metadata_props``, TFLite named metadata buffers):
the arch, space and its hash, resolution, preprocessing, class names, LUT ids and predicted latencies.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..formats.onnx_writer import OPSET, module_to_onnx
from ..formats.tflite_writer import module_to_tflite
from .subnet import PreparedSubnet

FORMATS = ("onnx", "tflite")
FILE_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite", "onnx_int8": "model_int8.onnx",
              "tflite_int8": "model_int8.tflite"}
RUNTIMES = {"onnx": "ort-cpu", "tflite": "tflite"}  # the profiler target whose LUT prices each format


def model_metadata(subnet: PreparedSubnet, predicted_ms: Mapping[str, float], luts: Mapping[str, str],
                   fmt: str) -> dict[str, str]:
    """``hwnas.*`` string entries describing the deployed subnet (what a phone app or a later audit needs)."""
    layout = "NCHW" if fmt.startswith("onnx") else "NHWC"
    return {
        "hwnas.kind": "deployed subnet",
        "hwnas.space": subnet.space.name,
        "hwnas.space_hash": subnet.space.content_hash,
        "hwnas.arch": subnet.arch.to_json(),
        "hwnas.resolution": str(subnet.resolution),
        "hwnas.input": f"{layout} float32, (x/255 - mean)/std per channel, {subnet.resolution}x{subnet.resolution}",
        "hwnas.preprocessing": json.dumps(subnet.preprocessing.to_dict()),
        "hwnas.classes": json.dumps(subnet.classes),
        "hwnas.lut_ids": json.dumps(dict(luts)),
        "hwnas.predicted_latency_ms": json.dumps({k: round(float(v), 4) for k, v in predicted_ms.items()}),
        "hwnas.precision": "fp32",
        **({"hwnas.onnx_opset": str(OPSET)} if fmt.startswith("onnx") else {}),
    }


def build_fp32(subnet: PreparedSubnet, fmt: str, metadata: Mapping[str, str], for_full_integer: bool = False) -> bytes:
    """The fp32 file of ``fmt`` (``onnx`` or ``tflite``) as bytes. ``for_full_integer``: the TFLite form a
    full-integer file is quantised from (h-swish as ADD/MUL, which XNNPACK runs in int8; the same numbers)."""
    shape = (1, 3, subnet.resolution, subnet.resolution)
    if fmt == "onnx":
        # batch 1, the very graph the profiler validated: a dynamic batch axis measured 5-10% slower here
        return module_to_onnx(subnet.module, shape, metadata=dict(metadata), dynamic_batch=False)
    if fmt == "tflite":
        return module_to_tflite(subnet.module, shape, metadata=dict(metadata), decompose_hard_swish=for_full_integer)
    raise ValueError(f"format {fmt!r} is not supported; choose from {list(FORMATS)}")


def read_metadata(path: str, data: bytes | None = None) -> dict[str, Any]:
    """The ``hwnas.*`` metadata of an exported ONNX or TFLite file."""
    if path.endswith(".onnx"):
        import onnx

        model = onnx.load_from_string(data) if data is not None else onnx.load(path, load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    if path.endswith(".tflite"):
        from ..formats.tflite_writer import read_tflite_metadata

        if data is None:
            with open(path, "rb") as handle:
                data = handle.read()
        return read_tflite_metadata(data)
    raise ValueError(f"{path}: not an .onnx or .tflite file")
