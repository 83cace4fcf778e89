"""Shared fixtures: paths to the real data beside the clone (tests skip cleanly without it)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NOTE10_DIR = SHARED / "external" / "ofa_luts" / "note10"


@pytest.fixture(scope="session")
def note10_dir() -> Path:
    if not NOTE10_DIR.is_dir():
        pytest.skip(f"real Note10 tables not found at {NOTE10_DIR}")
    return NOTE10_DIR


def random_table(space, resolutions=None, seed: int = 0, calibration: tuple[float, float] | None = None):
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
        table.set_calibration(*calibration)
    return table


def python_sum(space, table, arch) -> float:
    """OFA's way: build each active op's key, look it up, add (the reference for the native predictor)."""
    scale, offset = (1.0, 0.0)
    if table.calibration:
        scale, offset = table.calibration["scale"], table.calibration["offset"]
    total = 0.0
    for sig in space.signatures(arch):
        scoped = f"{sig.key}@r{arch.r}"
        total += table.mean(scoped if scoped in table else sig.key)
    return scale * total + offset
