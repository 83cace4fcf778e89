"""The ort-cpu target: op and subnet models, IO-bound timed runs, runtime description. No absolute times."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwnas import get_space
from hwnas.latency.targets.base import BuiltModel, Runner, static_op
from hwnas.latency.targets.ort_cpu import OrtCpuTarget
from hwnas.nn import OFAMobileNetV3

from conftest import condition_bn_

SPACE = get_space("tiny-mbv3")
R = 32
SE_BLOCK = SPACE.block_signature(5, R, 5, 4)  # relu, squeeze-excite, residual


@pytest.fixture(scope="module")
def target():
    return OrtCpuTarget(threads=1)


def test_describe(target):
    info = target.describe()
    assert info["name"] == "onnxruntime" and info["version"] == ort.__version__
    assert info["provider"] == "CPUExecutionProvider" and info["threads"] == 1
    assert info["graph_optimization"] == "all" and info["inter_op_threads"] == 1
    assert info["intra_op_spinning"] is False
    assert OrtCpuTarget(threads=2, spinning=True).describe()["intra_op_spinning"] is True
    assert OrtCpuTarget.name == "ort-cpu" and OrtCpuTarget.unavailable_reason() is None


@pytest.mark.parametrize("threads", [0, -1])
def test_threads_must_be_positive(threads):
    with pytest.raises(ValueError, match="threads"):
        OrtCpuTarget(threads=threads)


def test_session_options(target):
    options = target.session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_build_op_model(target):
    model = target.build_op(SE_BLOCK, seed=3)
    assert isinstance(model, BuiltModel) and isinstance(model.payload, bytes) and model.suffix == ".onnx"
    assert model.input_shape == (1, SE_BLOCK.in_c, SE_BLOCK.in_hw, SE_BLOCK.in_hw)
    proto = onnx.load_from_string(model.payload)
    onnx.checker.check_model(proto)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == list(model.input_shape)
    assert {p.key: p.value for p in proto.metadata_props}["hwnas.signature"] == SE_BLOCK.key
    assert target.build_op(SE_BLOCK, seed=3).payload == model.payload  # reproducible
    assert target.build_op(SE_BLOCK, seed=4).payload != model.payload


def test_op_output_matches_torch_with_nontrivial_bn(target):
    op = static_op(SE_BLOCK, seed=3)  # what build_op writes
    for bn in (op.expand_bn, op.dw_bn, op.project_bn):  # folding is far from the identity
        assert bn.running_mean.abs().mean() > 0.01 and (bn.running_var - 1).abs().mean() > 0.01
        assert (bn.weight - 1).abs().mean() > 0.01 and bn.bias.abs().mean() > 0.01
    x = np.random.default_rng(0).standard_normal(target.build_op(SE_BLOCK).input_shape).astype(np.float32)
    with target.runner(target.build_op(SE_BLOCK, seed=3)) as runner:
        got = runner.output(x)
    with torch.no_grad():
        want = op(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4 and np.abs(want).max() > 0.1


@pytest.mark.parametrize("signature", [*SPACE.fixed_signatures(R)[0], SE_BLOCK, *SPACE.fixed_signatures(R)[1]],
                         ids=lambda s: s.kind)
def test_run_timed(target, signature):
    runner = target.runner(target.build_op(signature))
    assert isinstance(runner, Runner)
    times = runner.run_timed(5)
    assert times.shape == (5,) and times.dtype == np.float64
    assert np.all(np.isfinite(times)) and np.all(times > 0)
    runner.close()


def test_subnet_model(target):
    torch.manual_seed(0)
    net = OFAMobileNetV3(SPACE)
    arch = SPACE.sample(5)
    subnet, r = net.extract(arch), arch.r
    condition_bn_(subnet, (1, 3, r, r), torch.Generator().manual_seed(5))
    subnet.eval()
    before = {k: v.clone() for k, v in subnet.state_dict().items()}
    model = target.build_subnet(subnet, r)
    assert all(torch.equal(before[k], v) for k, v in subnet.state_dict().items())  # not modified
    assert model.input_shape == (1, 3, r, r) and model.suffix == ".onnx"
    meta = {p.key: p.value for p in onnx.load_from_string(model.payload).metadata_props}
    assert meta["hwnas.resolution"] == str(r)
    x = np.random.default_rng(1).standard_normal((1, 3, r, r)).astype(np.float32)
    with target.runner(model) as runner:
        got = runner.output(x)
        times = runner.run_timed(5)
    with torch.no_grad():
        want = subnet(torch.from_numpy(x)).numpy()
    assert got.shape == (1, SPACE.num_classes) and np.abs(got - want).max() <= 1e-4
    assert times.shape == (5,) and np.all(np.isfinite(times)) and np.all(times > 0)
