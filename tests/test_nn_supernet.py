"""The supernet runs exactly the subnets its space describes, and extracts them exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwnas import get_space
from hwnas.nn import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv,
    ElasticPointwiseConv,
    OFAMobileNetV3,
    StaticSubnet,
    recalibrate_bn,
)
from hwnas.space import Arch, MobileNetV3Space

N_RANDOM = 50
SPACES = {
    "tiny-mbv3": {},
    "ofa-mbv3-w1.0": {"resolutions": (32, 40, 48), "num_classes": 10},
    "ofa-mbv3-w1.2": {"resolutions": (32, 40, 48), "num_classes": 10},
}


@torch.no_grad()
def randomize_(net: OFAMobileNetV3, gen: torch.Generator) -> None:
    """Random weights, BN affine parameters and kernel-transform matrices: nothing identity-like."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
            module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
        elif isinstance(module, (nn.Conv2d, nn.Linear, ElasticPointwiseConv, ElasticDepthwiseConv)):
            weight = module.weight
            weight.copy_(torch.randn(weight.shape, generator=gen) * (2 / weight[0].numel()) ** 0.5)
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
        if isinstance(module, ElasticDepthwiseConv):
            for name, matrix in module.named_parameters():
                if name.endswith("_matrix"):
                    matrix.copy_(torch.eye(matrix.shape[0]) + 0.2 * torch.randn(matrix.shape, generator=gen))


@torch.no_grad()
def condition_(net: OFAMobileNetV3, arch: Arch, gen: torch.Generator) -> None:
    """Activate ``arch`` and give its BNs running statistics from random images, perturbed per channel.

    Estimated statistics keep the signal alive through 20 blocks; the perturbation makes sure eval
    mode really uses the stored statistics.
    """
    net.set_active(arch)
    recalibrate_bn(net, [torch.randn(16, 3, arch.r, arch.r, generator=gen)], 1)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            std = module.running_var.sqrt()
            module.running_mean.add_(0.05 * std * torch.randn(std.shape, generator=gen))
            module.running_var.mul_(0.9 + 0.2 * torch.rand(std.shape, generator=gen))


def build(name: str, seed: int = 0) -> OFAMobileNetV3:
    torch.manual_seed(seed)
    net = OFAMobileNetV3(get_space(name, **SPACES[name]))
    randomize_(net, torch.Generator().manual_seed(seed))
    return net.eval()


def archs_of(space: MobileNetV3Space, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    return [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(N_RANDOM))]


@pytest.fixture(scope="module", params=list(SPACES))
def net(request: pytest.FixtureRequest) -> OFAMobileNetV3:
    return build(request.param)


def test_extract_matches_supernet_forward(net: OFAMobileNetV3) -> None:
    gen = torch.Generator().manual_seed(1)
    for arch in archs_of(net.space):
        condition_(net, arch, gen)
        subnet = net.extract()
        x = torch.randn(2, 3, arch.r, arch.r, generator=gen)
        with torch.no_grad():
            expected, actual = net(x), subnet(x)
        assert (expected[0] - expected[1]).abs().max() > 0.05  # the logits depend on the input
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5, msg=lambda m, arch=arch: f"{arch.to_json()}: {m}")


def test_extracted_ops_are_the_space_signatures(net: OFAMobileNetV3) -> None:
    elastic = (ElasticPointwiseConv, ElasticDepthwiseConv, ElasticBatchNorm2d)
    for arch in archs_of(net.space, seed=2):
        subnet = net.extract(arch)
        assert isinstance(subnet, StaticSubnet)
        assert not any(isinstance(m, elastic) for m in subnet.modules())
        assert subnet.signatures(arch.r) == net.space.signatures(arch)


def count_macs(model: nn.Module, r: int) -> int:
    """OFA's rule, measured: conv = output elements · k·k · in/groups, linear = in · out."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            total += output.numel() * k_h * k_w * module.in_channels // module.groups
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, r, r))
    for handle in handles:
        handle.remove()
    return total


def test_extracted_params_and_macs_match_space(net: OFAMobileNetV3) -> None:
    for arch in archs_of(net.space, seed=3):
        subnet = net.extract(arch)
        assert sum(p.numel() for p in subnet.parameters()) == net.space.params(arch)
        assert count_macs(subnet, arch.r) == net.space.macs(arch)


def test_extract_owns_its_weights_and_leaves_supernet_alone(net: OFAMobileNetV3) -> None:
    space = net.space
    net.set_active(space.max_arch())
    arch = space.sample(4)
    subnet = net.extract(arch)
    assert net.active_arch == space.max_arch()
    supernet_storage = {t.untyped_storage().data_ptr() for t in net.state_dict().values()}
    assert not any(t.untyped_storage().data_ptr() in supernet_storage for t in subnet.state_dict().values())
    assert not subnet.training and all(not m.training for m in subnet.modules())
    assert all(p.requires_grad for p in subnet.parameters())
    x = torch.randn(2, 3, arch.r, arch.r)
    with torch.no_grad():
        before = subnet(x)
        for p in net.parameters():
            p.mul_(2)
        after = subnet(x)
        for p in net.parameters():
            p.div_(2)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_reorganize_channels_keeps_function_and_sorts() -> None:
    """In float64, so that reordered float32 sums cannot hide or fake a difference."""
    net = build("tiny-mbv3", seed=5)
    space = net.space
    full = space.max_arch(r=32)
    condition_(net, full, torch.Generator().manual_seed(5))
    net.double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    small = Arch(ks=[3] * space.num_blocks, e=[min(space.expand)] * space.num_blocks, d=full.d, r=32)
    with torch.no_grad():
        full_before = net.extract(full)(x)
        small_before = net.extract(small)(x)
    assert not all(is_descending(block.channel_importance()) for block in net.blocks)
    net.reorganize_channels()
    assert all(is_descending(block.channel_importance()) for block in net.blocks)
    with torch.no_grad():
        net.set_active(full)
        torch.testing.assert_close(net(x), full_before, rtol=0, atol=1e-5)
        torch.testing.assert_close(net.extract()(x), net(x), rtol=0, atol=0)  # float64 extracts as float64
        net.set_active(small)
        assert (net(x) - small_before).abs().max() > 1e-3  # smaller widths now keep other channels


def is_descending(values: torch.Tensor) -> bool:
    return bool((values[:-1] >= values[1:]).all())


def test_forward_runs_at_the_input_resolution_and_sampling_is_seeded() -> None:
    net = build("tiny-mbv3", seed=6)
    assert net.sample_active(7) == net.space.sample(7)
    for r in net.space.resolutions:
        with torch.no_grad():
            assert net(torch.randn(1, 3, r, r)).shape == (1, net.num_classes)


def test_set_active_rejects_archs_outside_the_space() -> None:
    net = build("tiny-mbv3")
    bad = net.space.max_arch().to_dict()
    bad["ks"][0] = 4
    with pytest.raises(ValueError, match=r"ks\[0\]=4"):
        net.set_active(bad)
    with pytest.raises(ValueError, match="r=33"):
        net.extract({**net.space.min_arch().to_dict(), "r": 33})


def test_zero_init_residual_starts_every_residual_block_as_the_identity() -> None:
    space = get_space("tiny-mbv3")
    torch.manual_seed(0)
    net = OFAMobileNetV3(space, zero_init_residual=True).train()
    residual = [b for b in (net.first_block, *net.blocks) if b.residual]
    assert len(residual) >= space.num_stages * (max(space.depth) - 1)
    for block in residual:
        assert torch.count_nonzero(block.project_bn.weight) == 0
    block = net.blocks[1]  # stage 0, position 1: in = out channels, stride 1
    x = torch.randn(2, block.in_channels, 8, 8)
    torch.testing.assert_close(block(x), x)
    plain = [b for b in net.blocks if not b.residual]
    assert plain and all(torch.count_nonzero(b.project_bn.weight) > 0 for b in plain)
    torch.manual_seed(0)
    default = OFAMobileNetV3(space)
    assert all(torch.count_nonzero(b.project_bn.weight) > 0 for b in default.blocks)
