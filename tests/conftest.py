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
        table.set_calibration(scale, offset, **dict(zip(("per_op", "per_element"), terms)))
    return table


def python_sum(space, table, arch) -> float:
    """OFA's way: build each active op's key, look it up, add (the reference for the native predictor),
    with the calibration applied per op as documented: Σ (scale·mean + per_op + per_element·io) + offset."""
    cal = {"scale": 1.0, "offset": 0.0, "per_op": 0.0, "per_element": 0.0, **(table.calibration or {})}
    total = cal["offset"]
    for sig in space.signatures(arch):
        scoped = f"{sig.key}@r{arch.r}"
        mean = table.mean(scoped if scoped in table else sig.key)
        total += cal["scale"] * mean + cal["per_op"] + cal["per_element"] * sig.io_elements
    return total
