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


def test_an_entry_keeps_its_fastest_window_and_counts_its_fast_ones():
    windows = [window(1.50, 1.5 * BASE, 1.5 * BASE), window(1.01, BASE, BASE), window(1.00, BASE, 1.01 * BASE)]
    kept = ref.combine(windows, BASE)
    assert kept["mean"] == 1.00 and kept["fast_windows"] == 2 and kept["settled"]


def test_a_window_is_fast_only_when_the_reference_was_fast_on_both_sides():
    assert ref.is_fast(window(1.0, BASE, 1.04 * BASE), BASE)
    assert not ref.is_fast(window(1.0, BASE, 1.5 * BASE), BASE)  # the state changed during the window
    assert not ref.combine([window(1.5, 1.5 * BASE, 1.5 * BASE)], BASE)["settled"]


def test_settle_times_again_only_what_caught_no_fast_state_and_stops():
    """Key 'a' has a fast window; 'b' gets one in its second extra round; 'c' never does (rounds run out)."""
    store = {"a": [window(1.0, BASE, BASE)], "b": [window(1.5, 1.5 * BASE, 1.5 * BASE)],
             "c": [window(1.5, 1.5 * BASE, 1.5 * BASE)]}
    timed: list[tuple[str, int]] = []

    def time_window(key: str, pass_index: int) -> None:
        timed.append((key, pass_index))
        fast = key == "b" and pass_index == 2
        store[key].append(window(1.0 if fast else 1.5, BASE if fast else 1.5 * BASE, BASE if fast else 1.5 * BASE))

    rounds = ref.settle(lambda: store, first_extra_pass=1, time_window=time_window, seed=0, rounds=3)
    assert rounds == 3
    assert sorted(timed) == [("b", 1), ("b", 2), ("c", 1), ("c", 2), ("c", 3)]
    assert ref.combine(store["b"], BASE)["mean"] == 1.0


def test_the_base_is_the_runs_fast_state_and_needs_readings():
    readings = [BASE] * 20 + [1.5 * BASE] * 80
    assert ref.base_speed(readings) == pytest.approx(BASE)
    with pytest.raises(ValueError, match="no reference readings"):
        ref.base_speed([])


class SwitchingMachine:
    """A shared host: every op runs 1.5x slower in the slow state, which comes and goes at random (a seeded
    two-state Markov chain per timed batch, slow two thirds of the time, states lasting ~10-20 batches)."""

    def __init__(self, seed: int) -> None:
        self.rng, self.slow = np.random.default_rng(seed), True

    def factor(self) -> float:
        if self.rng.random() < (0.05 if self.slow else 0.10):
            self.slow = not self.slow
        return 1.5 if self.slow else 1.0


class SwitchingRunner(FakeRunner):
    def __init__(self, cost_ms: float, seed: int, machine: SwitchingMachine) -> None:
        super().__init__(cost_ms, seed, 0.0)
        self.machine = machine

    def run_timed(self, n: int) -> np.ndarray:
        return super().run_timed(n) * self.machine.factor()


class SwitchingTarget(FakeTarget):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.machine = SwitchingMachine(seed)

    def runner(self, model):
        return SwitchingRunner(model.payload, int(model.payload * 1e6) % 2**31, self.machine)


def test_a_profile_on_a_switching_machine_prices_every_entry_at_the_fast_state(tmp_path):
    """Slow two thirds of the time: with 2 passes many entries catch no fast window, are timed again, and end
    at the fast-state cost like the others (the old fastest-of-the-passes rule left them up to 1.5x high)."""
    space = get_space("tiny-mbv3")
    target = SwitchingTarget(seed=0)
    table = profile(space, target, tmp_path, resolutions=[24], protocol=Protocol.quick(), passes=2, progress=False)
    truth = {sig.key: 1e-6 * sig.macs + 0.01 for sig in space.all_signatures([24])}
    error = np.array([table.mean(k) / truth[k] - 1 for k in truth])
    assert np.max(np.abs(error)) < 0.04, np.sort(np.abs(error))[-5:]
    speed = table.metadata["speed_reference"]
    assert speed["base_ms"] == pytest.approx(truth[speed["key"]], rel=0.03)
    assert speed["settle_rounds"] >= 1 and len(speed["unsettled"]) <= 0.1 * len(truth)
    assert speed["windows"] > 2 * len(truth)  # the extra windows are in the journal and the count
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()[1:]]
    first_two = {}
    for record in journal:
        if record["pass"] < 2:
            first_two[record["key"]] = min(first_two.get(record["key"], float("inf")), record["mean"])
    old_error = np.array([first_two[k] / truth[k] - 1 for k in truth])
    assert np.max(old_error) > 0.3  # without timing again, some entries kept a slow-state window
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
