"""The ``tflite`` target: LiteRT + XNNPACK runs hwnas-written models; numerics and timing shape, no absolute times."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ai_edge_litert")

from hwnas.formats.tflite_writer import read_tflite_metadata
from hwnas.latency.targets import get_target
from hwnas.latency.targets.base import static_op
from hwnas.latency.targets.tflite import TfliteRunner, TfliteTarget
from hwnas.nn import OFAMobileNetV3, recalibrate_bn
from hwnas.space import OpSignature, get_space

BLOCK = OpSignature("expanded_conv", in_hw=16, in_c=16, out_hw=8, out_c=24, mid_c=48, kernel=5, stride=2, se=True,
                    act="h_swish")


@pytest.fixture(scope="module")
def target() -> TfliteTarget:
    return TfliteTarget(threads=1)


def test_describe(target: TfliteTarget) -> None:
    info = target.describe()
    assert info["name"] == "litert" and info["provider"] == "XNNPACK" and info["threads"] == 1
    assert isinstance(info["version"], str) and info["version"][0].isdigit()
    assert TfliteTarget.name == "tflite" and TfliteTarget.unavailable_reason() is None
    assert TfliteTarget(threads=2, xnnpack=False).describe()["provider"].startswith("builtin")
    assert isinstance(get_target("tflite", threads=2), TfliteTarget)
    with pytest.raises(ValueError, match="threads"):
        TfliteTarget(threads=0)


def test_build_op_matches_the_static_op(target: TfliteTarget) -> None:
    model = target.build_op(BLOCK, seed=7)
    assert model.suffix == ".tflite" and isinstance(model.payload, bytes)
    assert model.input_shape == (1, 16, 16, 16)  # NHWC
    assert read_tflite_metadata(model.payload) == {}
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = static_op(BLOCK, seed=7)(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    with target.runner(model) as runner:
        got = runner.output(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        assert got.shape == (1, 8, 8, 24)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        with pytest.raises(ValueError, match="NHWC"):
            runner.output(x[:, :8])


def test_seed_changes_weights_not_structure(target: TfliteTarget) -> None:
    a, b = target.build_op(BLOCK, seed=0).payload, target.build_op(BLOCK, seed=1).payload
    assert a != b and len(a) == len(b)
    assert target.build_op(BLOCK, seed=0).payload == a


@pytest.mark.parametrize("sig", [
    BLOCK,
    OpSignature("AvgPool2D", in_hw=4, in_c=64, out_hw=1, out_c=64),
    OpSignature("Logits", in_hw=1, in_c=64, out_hw=0, out_c=10),
], ids=lambda s: s.kind)
def test_run_timed_and_xnnpack_is_applied(target: TfliteTarget, sig: OpSignature) -> None:
    with target.runner(target.build_op(sig)) as runner:
        assert runner.delegation()["fully_delegated"]
        times = runner.run_timed(5)
        assert times.shape == (5,) and times.dtype == np.float64
        assert np.all(np.isfinite(times)) and np.all(times > 0)
    builtin = TfliteTarget(threads=1, xnnpack=False)
    with builtin.runner(builtin.build_op(sig)) as runner:
        assert runner.delegation() == {"delegate_nodes": 0, "ops": runner.delegation()["ops"], "fully_delegated": False}
        assert runner.run_timed(2).shape == (2,)


def test_build_subnet_matches_pytorch(target: TfliteTarget) -> None:
    space = get_space("tiny-mbv3")
    torch.manual_seed(0)
    arch = space.sample(np.random.default_rng(4))
    subnet = OFAMobileNetV3(space).extract(arch)
    recalibrate_bn(subnet, [torch.randn(4, 3, arch.r, arch.r, generator=torch.Generator().manual_seed(0))], 1)
    subnet.eval()
    model = target.build_subnet(subnet, arch.r)
    assert model.input_shape == (1, arch.r, arch.r, 3) and model.suffix == ".tflite"
    x = np.random.default_rng(1).standard_normal((1, 3, arch.r, arch.r)).astype(np.float32)
    with torch.no_grad():
        expected = subnet(torch.from_numpy(x)).numpy()
    with target.runner(model) as runner:
        assert runner.delegation()["fully_delegated"]
        np.testing.assert_allclose(runner.output(np.ascontiguousarray(x.transpose(0, 2, 3, 1))), expected,
                                   rtol=0, atol=1e-4)
        assert runner.run_timed(3).shape == (3,)


def test_runner_binds_a_random_input_once(target: TfliteTarget) -> None:
    runner = TfliteRunner(target.build_op(BLOCK).payload, threads=1)
    bound = runner.interpreter.get_tensor(runner.input_index)
    assert bound.shape == (1, 16, 16, 16) and bound.std() > 0.5
    runner.run_timed(2)
    np.testing.assert_array_equal(runner.interpreter.get_tensor(runner.input_index), bound)
    runner.close()
