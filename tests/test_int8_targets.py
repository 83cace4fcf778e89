"""int8 latency profiling: targets at ``precision="int8"`` build the models export ships, and every stage that
takes a LUT refuses one of the other precision (an int8 deployment must not be searched with fp32 costs)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import random_table

from hwnas.cli import main
from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency.profiler import profile
from hwnas.latency.protocol import Protocol
from hwnas.latency.targets import get_target
from hwnas.latency.targets.base import calibration_inputs, static_op
from hwnas.latency.targets.ort_cpu import OrtCpuTarget
from hwnas.latency.validate import validate
from hwnas.search.run import check_precision
from hwnas.space import OpSignature, get_space

BLOCK = OpSignature("expanded_conv", in_hw=16, in_c=16, out_hw=8, out_c=24, mid_c=48, kernel=5, stride=2, se=True,
                    act="h_swish")
SPACE = get_space("tiny-mbv3")


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision='fp16'"):
        OrtCpuTarget(precision="fp16")
    assert get_target("ort-cpu", 1, precision="int8").describe()["precision"] == "int8"
    assert "quantization" not in get_target("ort-cpu", 1).describe()


def test_ort_int8_op_is_qdq_and_close_to_fp32():
    target = get_target("ort-cpu", 1, precision="int8")
    model = target.build_op(BLOCK, seed=3)
    graph = onnx.load_from_string(model.payload).graph
    kinds = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float in, float out, as export
    x = calibration_inputs(model.input_shape, 3)[:1]  # in the calibrated range
    with target.runner(model) as runner:
        got = runner.output(x)
        assert runner.run_timed(3).shape == (3,)
    with torch.no_grad():
        want = static_op(BLOCK, 3)(torch.from_numpy(x)).numpy()
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.98


def test_tflite_int8_op_is_full_integer_and_one_partition():
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("ai_edge_quantizer")
    target = get_target("tflite", 1, precision="int8")
    with target.runner(target.build_op(BLOCK, seed=3)) as runner:
        assert runner.input_dtype == np.int8  # timed between int8 neighbours, as inside an int8 subnet
        assert runner.delegation()["fully_delegated"], runner.delegation()
        assert runner.run_timed(3).shape == (3,)


def test_int8_profile_is_labelled_and_checked_everywhere(tmp_path):
    target = get_target("ort-cpu", 1, precision="int8")
    table = profile(SPACE, target, tmp_path / "int8", resolutions=[24], protocol=Protocol.quick(), passes=1,
                    progress=False)
    assert table.metadata["precision"] == "int8" and table.metadata["runtime"]["precision"] == "int8"
    assert len(table) == len(SPACE.all_signatures([24]))
    # an int8 LUT is not validated on fp32 subnets, nor an fp32 one searched for int8
    with pytest.raises(ValueError, match="prices int8 ops; validating it on fp32"):
        validate(SPACE, get_target("ort-cpu", 1), tmp_path / "int8", n=10, protocol=Protocol.quick(), passes=1,
                 progress=False)
    fp32 = tmp_path / "fp32.json"
    random_table(SPACE, seed=1).save(fp32)
    latency = {"a": LatencyPredictor(SPACE, LatencyTable.load(fp32))}
    with pytest.raises(ValueError, match=r"fp32.json prices fp32 ops but the search is for int8"):
        check_precision(latency, {"a": str(fp32)}, "int8")
    check_precision(latency, {"a": str(fp32)}, "fp32")
    # the CLI validates an int8 LUT on int8 subnets without being told
    assert main(["lut", "validate", str(tmp_path / "int8"), "--n", "10", "--quick", "--passes", "1"]) == 0
    report = json.loads((tmp_path / "int8" / "validation.json").read_text())
    assert report["runtime"]["precision"] == "int8"
