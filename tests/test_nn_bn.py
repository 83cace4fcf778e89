"""BatchNorm recalibration: plain averages over the given batches, deterministic, state restored."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwnas import get_space
from hwnas.nn import OFAMobileNetV3, StaticSubnet, recalibrate_bn


@pytest.fixture
def subnet() -> StaticSubnet:
    torch.manual_seed(0)
    net = OFAMobileNetV3(get_space("tiny-mbv3")).eval()
    return net.extract(net.space.sample(1))


def batches(count: int, r: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(2)
    return [(torch.randn(4, 3, r, r, generator=gen), torch.zeros(4, dtype=torch.long)) for _ in range(count)]


def stats(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var)]


def test_statistics_are_the_average_over_batches(subnet: StaticSubnet) -> None:
    stem_outputs: list[torch.Tensor] = []
    stem = subnet[0]
    handle = stem.conv.register_forward_hook(lambda module, inputs, output: stem_outputs.append(output))
    assert recalibrate_bn(subnet, batches(5), 3) == 3
    handle.remove()
    assert len(stem_outputs) == 3
    means = torch.stack([out.mean((0, 2, 3)) for out in stem_outputs])
    variances = torch.stack([out.transpose(0, 1).flatten(1).var(1) for out in stem_outputs])  # unbiased
    torch.testing.assert_close(stem.bn.running_mean, means.mean(0))
    torch.testing.assert_close(stem.bn.running_var, variances.mean(0))


def test_recalibration_is_deterministic_changes_outputs_and_restores_state(subnet: StaticSubnet) -> None:
    x = batches(1)[0][0]
    twin = copy.deepcopy(subnet)
    with torch.no_grad():
        before, stats_before = subnet(x), stats(subnet)
    recalibrate_bn(subnet, batches(4), 4)
    recalibrate_bn(twin, batches(4), 4)
    assert not subnet.training and all(not m.training for m in subnet.modules())
    assert all(m.momentum == 0.1 for m in subnet.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(not torch.equal(a, b) for a, b in zip(stats(subnet), stats_before))
    assert all(torch.equal(a, b) for a, b in zip(stats(subnet), stats(twin)))
    with torch.no_grad():
        after = subnet(x)
        assert torch.equal(after, twin(x))
    assert (after - before).abs().max() > 1e-3


def test_bad_arguments(subnet: StaticSubnet) -> None:
    with pytest.raises(ValueError, match="n_batches=0"):
        recalibrate_bn(subnet, batches(1), 0)
    before = stats(subnet)
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(subnet, [], 2)
    assert not subnet.training
    assert all(torch.equal(a, b) for a, b in zip(stats(subnet), before))  # nothing was reset
