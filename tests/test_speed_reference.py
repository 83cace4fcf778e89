"""The speed reference: entries priced at one machine speed whatever state each window caught."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.latency import LatencyTable
from hwnas.latency import speed_reference as ref
from hwnas.latency.check import check_lut
from hwnas.latency.profiler import profile
from hwnas.latency.protocol import Protocol
from hwnas.space import get_space

from fake_target import FakeRunner, FakeTarget

BASE = 0.02


def window(mean: float, before: float, after: float) -> dict:
    return {"mean": mean, "median": mean, "std": 0.0, "p5": mean, "p95": mean, "min": mean, "n": 10,
            "ref_before": before, "ref_after": after}


def test_an_entry_that_caught_the_fast_state_keeps_its_fastest_window():
    windows = [window(1.50, 1.5 * BASE, 1.5 * BASE), window(1.01, BASE, BASE), window(1.00, BASE, 1.01 * BASE)]
    kept = ref.combine(windows, BASE)
    assert kept["mean"] == 1.00 and kept["priced"] is False


def test_an_entry_that_saw_only_slow_windows_is_priced_at_the_reference_speed():
    """Every window in a 1.5x slow state: the fastest window would be 1.5x too high; priced, it is right."""
    windows = [window(1.50, 1.5 * BASE, 1.5 * BASE), window(1.53, 1.52 * BASE, 1.53 * BASE),
               window(1.47, 1.46 * BASE, 1.48 * BASE)]
    kept = ref.combine(windows, BASE)
    assert kept["priced"] is True
    assert kept["mean"] == pytest.approx(1.0, rel=0.01)
    assert kept["raw_mean"] > 1.45  # what the window measured, kept beside its price


def test_a_window_whose_state_changed_midway_is_set_aside():
    """Reference 1.0 before and 1.5 after: the window mixed states, so its price is unreliable."""
    steady = [window(1.5, 1.5 * BASE, 1.5 * BASE), window(1.55, 1.55 * BASE, 1.55 * BASE)]
    mixed = window(1.5, BASE, 1.5 * BASE)
    assert ref.window_factor(mixed, BASE)[1] is False
    assert ref.combine_normalised([*steady, mixed], BASE)["steady_windows"] == 2


def test_the_base_is_the_runs_fast_state_and_needs_readings():
    readings = [BASE] * 20 + [1.5 * BASE] * 80
    assert ref.base_speed(readings) == pytest.approx(BASE)
    with pytest.raises(ValueError, match="no reference readings"):
        ref.base_speed([])


class SwitchingMachine:
    """A shared host: every op runs 1.5x slower in the slow state, which comes and goes by call count."""

    def __init__(self, period: int) -> None:
        self.calls, self.period = 0, period

    def factor(self) -> float:
        self.calls += 1
        return 1.5 if (self.calls // self.period) % 3 else 1.0  # slow two thirds of the time


class SwitchingRunner(FakeRunner):
    def __init__(self, cost_ms: float, seed: int, machine: SwitchingMachine) -> None:
        super().__init__(cost_ms, seed, 0.0)
        self.machine = machine

    def run_timed(self, n: int) -> np.ndarray:
        return super().run_timed(n) * self.machine.factor()


class SwitchingTarget(FakeTarget):
    def __init__(self, period: int) -> None:
        super().__init__()
        self.machine = SwitchingMachine(period)

    def runner(self, model):
        return SwitchingRunner(model.payload, int(model.payload * 1e6) % 2**31, self.machine)


def test_a_profile_on_a_switching_machine_prices_every_entry_at_the_fast_state(tmp_path):
    space = get_space("tiny-mbv3")
    target = SwitchingTarget(period=25)
    table = profile(space, target, tmp_path, resolutions=[24], protocol=Protocol.quick(), passes=4, progress=False)
    truth = {sig.key: 1e-6 * sig.macs + 0.01 for sig in space.all_signatures([24])}
    error = np.array([table.mean(k) / truth[k] - 1 for k in truth])
    assert np.max(np.abs(error)) < 0.06, np.sort(np.abs(error))[-5:]
    speed = table.metadata["speed_reference"]
    assert speed["base_ms"] == pytest.approx(truth[speed["key"]], rel=0.03)
    assert speed["priced_entries"] > 0  # some entries never caught the fast state, and were still priced right
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()[1:]]
    assert all(r["ref_before"] > 0 and r["ref_after"] > 0 for r in journal)


def test_lut_check_says_slower_or_faster_and_by_how_much(tmp_path):
    """A table whose entries are half (then twice) what the ops take here reads 'slower' (then 'faster')."""
    pytest.importorskip("onnxruntime")
    space = get_space("tiny-mbv3")
    signatures = space.all_signatures([24])
    blocks = [s for s in signatures if s.kind == "expanded_conv"]
    for scale, word in ((1e-3, "slower"), (1e3, "faster")):
        table = LatencyTable(metadata={"target": "ort-cpu", "space": space.name, "resolutions": [24],
                                       "runtime": {"threads": 1}, "device": "somewhere else"})
        table.set_many([s.key for s in blocks], np.full((len(blocks), 6), scale), np.full(len(blocks), 10))
        table.save(tmp_path / "lut.json")
        report = check_lut(tmp_path / "lut.json", ops=3, passes=2, protocol=Protocol.quick())
        assert len(report["ops"]) == 3 and word in report["verdict"]
        assert (report["ratio"] > 10) if word == "slower" else (report["ratio"] < 0.1)
        assert "profiled on somewhere else" in report["verdict"]


def test_lut_check_refuses_a_lut_of_another_device():
    from conftest import ROOT

    with pytest.raises(ValueError, match="can only be checked there"):
        check_lut(ROOT / "device_profiles/note10-ofa-mbv3-w1.2/lut.json")
