"""Shared fixtures: paths to the real data beside the clone (tests skip cleanly without it)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NOTE10_DIR = SHARED / "external" / "ofa_luts" / "note10"


@pytest.fixture(autouse=True)
def one_thread():
    """Tests use small tensors: intra-op threads only add wake-up latency and stall on a busy shared box."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def note10_dir() -> Path:
    if not NOTE10_DIR.is_dir():
        pytest.skip(f"real Note10 tables not found at {NOTE10_DIR}")
    return NOTE10_DIR


def random_table(space, resolutions=None, seed: int = 0, calibration: tuple[float, ...] | None = None):
    """A LatencyTable with random positive means for every op the space needs at ``resolutions``."""
    import numpy as np

    from hwnas.latency import LatencyTable, make_metadata

    rng = np.random.default_rng(seed)
    keys = [sig.key for sig in space.all_signatures(resolutions)]
    means = rng.uniform(0.01, 2.0, len(keys))
    stats = np.full((len(keys), 6), np.nan)
    stats[:, 0] = means
    stats[:, 1] = means * 0.99
    stats[:, 2] = means * 0.02
    table = LatencyTable(metadata=make_metadata(device="synthetic", space_hash=space.content_hash))
    table.set_many(keys, stats, np.full(len(keys), 50))
    if calibration:
        scale, offset, *terms = calibration
        table.set_calibration(scale, offset, **dict(zip(("per_op", "per_element", "per_param"), terms)))
    return table


def write_validation_report(folder, space, measured_ms=(0.2, 0.4, 0.8, 1.6, 3.2, 6.4), archs=None) -> None:
    """A ``validation.json`` beside a test LUT with the fields the drift check reads (``hwnas.latency.drift``):
    ``archs`` (default: seeded random ones) with the latencies ``measured_ms`` at validation time."""
    import json

    import numpy as np

    archs = archs or [space.sample(np.random.default_rng(i)) for i in range(len(measured_ms))]
    subnets = [{"arch": a.to_dict(), "measured_ms": m, "role": "holdout"} for a, m in zip(archs, measured_ms)]
    (Path(folder) / "validation.json").write_text(json.dumps({"space_hash": space.content_hash, "subnets": subnets}))


def python_sum(space, table, arch) -> float:
    """OFA's way: build each active op's key, look it up, add (the reference for the native predictor),
    with the calibration applied per op as documented: Σ (scale·mean + per_op + per_element·io + per_param·params)
    + offset."""
    cal = {"scale": 1.0, "offset": 0.0, "per_op": 0.0, "per_element": 0.0, "per_param": 0.0,
           **(table.calibration or {})}
    total = cal["offset"]
    for sig in space.signatures(arch):
        scoped = f"{sig.key}@r{arch.r}"
        mean = table.mean(scoped if scoped in table else sig.key)
        total += cal["scale"] * mean + cal["per_op"] + cal["per_element"] * sig.io_elements + cal["per_param"] * sig.params
    return total


def condition_bn_(module, input_shape: tuple[int, ...], generator, batch: int = 4) -> None:
    """Trained-network-like BatchNorms for numerics checks: statistics estimated on random inputs, then
    perturbed per channel (so folding is far from the identity).

    Independent random statistics let a deep random subnet's signal die (its output no longer depends
    on the input) or, undamped, grow geometrically (activations in the thousands by the last stage,
    where two correct float32 runtimes differ by far more than 1e-4). Estimated statistics and halved
    scales on each block's last BN (``project_bn``), as in trained residual networks, avoid both.
    """
    import torch

    from hwnas.nn import recalibrate_bn

    norms = [(name, m) for name, m in module.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    x = torch.randn((batch, *input_shape[1:]), generator=generator)
    recalibrate_bn(module, [x], 1)
    with torch.no_grad():
        _perturb_bn(norms, generator)


def _perturb_bn(norms, generator) -> None:
    import torch

    for name, bn in norms:
        # a channel that is (nearly) constant on the random batch, e.g. dead after ReLU, would get a
        # variance near 0 and a 1/sqrt(eps) gain: trained networks have no such channels
        bn.running_var.clamp_(min=0.1 * float(bn.running_var.mean()) + bn.eps)
        std = bn.running_var.sqrt()
        bn.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=generator))
        bn.running_var.mul_(0.8 + 0.4 * torch.rand(std.shape, generator=generator))
        gain = 0.5 if name.rsplit(".", 1)[-1] == "project_bn" else 1.0
        bn.weight.copy_(gain * (0.75 + 0.5 * torch.rand(bn.weight.shape, generator=generator)))
        bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=generator))
