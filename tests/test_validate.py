"""End-to-end validation: the calibration is fitted on one half, reported on the other, stored in the LUT."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency import calibration as cal
from hwnas.latency.profiler import profile
from hwnas.latency.protocol import Protocol
from hwnas.latency.validate import VALIDATION_JSON, VALIDATION_PNG, sample_archs, validate
from hwnas.space import get_space
from hwnas.stats import kendall_tau

from fake_target import FakeTarget


def test_calibration_recovers_a_per_op_boundary_cost(tmp_path):
    """Standalone ops overstate by a fixed cost each; the fitted model removes it on held-out subnets."""
    space = get_space("tiny-mbv3")
    target = FakeTarget(boundary_ms=0.3)
    profile(space, target, tmp_path, resolutions=[24, 32], protocol=Protocol.quick(), passes=1, progress=False)
    report = validate(space, target, tmp_path, n=24, protocol=Protocol.quick(), passes=1, progress=False)
    raw, calibrated = report["holdout_uncalibrated"], report["holdout_calibrated"]
    assert raw["within_10pct"] < 0.5  # every op overstated by 0.3 ms: the plain sum is far off
    assert calibrated["within_5pct"] == 1.0 and calibrated["rmspe_pct"] < 2.0
    assert report["model"] in ("scale+per_op+offset", "scale+per_op+per_element+offset")
    # the op count and the op sum both grow with the validation archs' size level, so per-op cost and
    # offset trade off a little: the held-out error above is the sharp check, this one the physics
    assert report["calibration"]["per_op"] == pytest.approx(-0.3, rel=0.15)
    on_disk = json.loads((tmp_path / VALIDATION_JSON).read_text())
    assert on_disk["holdout_calibrated"] == calibrated and len(on_disk["subnets"]) == 24
    assert (tmp_path / VALIDATION_PNG).read_bytes()[:4] == b"\x89PNG"
    table = LatencyTable.load(tmp_path / "lut.json")
    assert table.calibration["model"] == report["model"]
    holdout = [s for s in on_disk["subnets"] if s["role"] == "holdout"]
    predicted = LatencyPredictor(space, table).predict([s["arch"] for s in holdout])
    np.testing.assert_allclose(predicted, [s["predicted_ms"] for s in holdout], rtol=1e-9)


def test_validation_refuses_unprofiled_resolutions_and_tiny_n(tmp_path):
    space = get_space("tiny-mbv3")
    profile(space, FakeTarget(), tmp_path, resolutions=[24], protocol=Protocol.quick(), passes=1, progress=False)
    with pytest.raises(ValueError, match=r"resolutions \[40\] are not covered"):
        validate(space, FakeTarget(), tmp_path, n=10, resolutions=[24, 40], progress=False)
    with pytest.raises(ValueError, match="at least 10"):
        validate(space, FakeTarget(), tmp_path, n=4, progress=False)


def test_metrics_and_kendall():
    measured = np.array([1.0, 2.0, 3.0, 4.0])
    m = cal.metrics(measured * np.array([1.0, 1.04, 0.92, 1.2]), measured)
    assert m["within_5pct"] == 0.5 and m["within_10pct"] == 0.75
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert kendall_tau(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)


def test_validation_archs_span_the_space_from_smallest_to_largest():
    """Uniform archs crowd the middle; the validation set must hold both ends at every resolution, and depth and
    width vary apart (shallow-wide and deep-narrow archs, not only the diagonal)."""
    space = get_space("tiny-mbv3")
    archs = sample_archs(space, [24, 32, 40], n=60, seed=3)
    assert [a.r for a in archs[:6]] == [24, 32, 40, 24, 32, 40]
    for r in (24, 32, 40):
        at_r = [a for a in archs if a.r == r]
        assert len(at_r) == 20
        smallest, largest = space.min_arch(), space.max_arch()
        assert (at_r[0].ks, at_r[0].e, at_r[0].d) == (smallest.ks, smallest.e, smallest.d)
        assert (at_r[-1].ks, at_r[-1].e, at_r[-1].d) == (largest.ks, largest.e, largest.d)
        depth = np.array([sum(a.d) for a in at_r], dtype=float)
        width = np.array([np.mean(np.array(a.ks) * np.array(a.e)) for a in at_r])
        macs = np.array([space.macs(a) for a in at_r], dtype=float)
        assert kendall_tau(np.arange(len(depth)), depth) > 0.6  # depth levels rise (binomial draws, ties)
        assert abs(kendall_tau(depth, width)) < 0.6  # width is paired with depth at random
        shallow, narrow = depth <= np.median(depth), width <= np.median(width)
        assert np.any(shallow & ~narrow) and np.any(~shallow & narrow)
        span = macs.max() - macs.min()  # sizes fill the range without a gap
        assert np.max(np.diff(np.sort(macs))) < 0.25 * span
    uniform = space.decode(space.sample_codes(60, np.random.default_rng(3)))
    uniform_macs = np.array([space.macs(a) for a in uniform if a.r == 40], dtype=float)
    stratified_macs = np.array([space.macs(a) for a in archs if a.r == 40], dtype=float)
    assert stratified_macs.max() - stratified_macs.min() > 1.5 * (uniform_macs.max() - uniform_macs.min())
    assert sample_archs(space, [24, 32, 40], n=60, seed=3) == archs  # seeded
