"""Drift check: the LUT's own validation subnets, re-timed beside an exported file, measure the machine's speed."""
from __future__ import annotations

import numpy as np
import pytest

from hwnas.export.verify import anchors_for, measure_files, speed_now
from hwnas.latency.drift import nearest_subnets
from hwnas.space import get_space

from conftest import write_validation_report


def test_nearest_subnets_are_nearest_in_log_latency():
    subnets = [{"measured_ms": m} for m in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)]
    assert nearest_subnets(subnets, 0.45, 2) == [2, 3]  # |log(0.45/0.4)| < |log(0.8/0.45)| < |log(0.45/0.2)|
    assert nearest_subnets(subnets, 0.1, 3) == [0, 1, 2]
    assert nearest_subnets(subnets, 100.0, 1) == [5]
    assert nearest_subnets(subnets, 1.0, 0) == [] and nearest_subnets([], 1.0, 3) == []
    with pytest.raises(ValueError, match="predicted_ms=0"):
        nearest_subnets(subnets, 0, 2)


def test_anchor_ratio_is_now_over_validation_time(tmp_path):
    """Anchors rebuilt from validation.json and timed now: the factor is their median now/then ratio."""
    space = get_space("tiny-mbv3")
    rng = np.random.default_rng(0)
    archs = [space.arch({**space.sample(rng).to_dict(), "r": 24}) for _ in range(3)]
    write_validation_report(tmp_path, space, measured_ms=(0.05, 100.0, 200.0), archs=archs)
    anchors = anchors_for(space, tmp_path / "lut.json", "onnx", "ort-cpu", 1, predicted_ms=0.06, k=1)
    key = f"anchor/onnx/{tmp_path / 'lut.json'}/0"  # validation subnet 0 of this LUT, as an ONNX file
    assert [a.key for a in anchors] == [key] and anchors[0].then_ms == 0.05
    measured = measure_files([a.item for a in anchors], passes=1)
    speed = speed_now(anchors, measured)
    assert speed["anchors"] == 1
    assert speed["factor"] == pytest.approx(measured[key]["measured_latency_ms"] / 0.05)
    assert speed_now([], measured) is None
    # another space's report, no report, or k=0: no anchors, so no drift figure (never a wrong one)
    assert anchors_for(get_space("ofa-mbv3-w1.0"), tmp_path / "lut.json", "onnx", "ort-cpu", 1, 0.06) == []
    assert anchors_for(space, tmp_path / "elsewhere" / "lut.json", "onnx", "ort-cpu", 1, 0.06) == []
    assert anchors_for(space, tmp_path / "lut.json", "onnx", "ort-cpu", 1, 0.06, k=0) == []
