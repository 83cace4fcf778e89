"""Search: features, the accuracy predictor, exact minima, batched evolution with repair, Pareto fronts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.latency import LatencyPredictor
from hwnas.search import (
    AccuracyPredictor,
    evolution_search,
    feature_count,
    one_hot_features,
    op_cost_predictor,
    pareto_front,
    smallest,
)
from hwnas.space import get_space

from conftest import random_table


@pytest.fixture(scope="module")
def space():
    return get_space("tiny-mbv3")


@pytest.fixture(scope="module")
def latency(space):
    return LatencyPredictor(space, random_table(space, seed=1, calibration=(1.1, 0.05)))


class MacsLikePredictor(AccuracyPredictor):
    """A known accuracy landscape: more MACs help with diminishing returns, plus a resolution bonus."""

    def predict(self, codes):
        macs = op_cost_predictor(self.space, "macs").predict(codes)
        return 0.5 + 0.3 * np.log1p(macs) / np.log1p(60.0) + 0.01 * codes[:, -1]


def test_one_hot_features_encode_depth_by_unlit_slots(space):
    codes = space.sample_codes(200, 0)
    features = one_hot_features(space, codes)
    assert features.shape == (200, feature_count(space)) == (200, 20 * 6 + 3)
    archs = space.decode(codes)
    active = np.array([sum(a.d) for a in archs])
    np.testing.assert_array_equal(features.sum(axis=1), 2 * active + 1)
    arch = archs[0]
    slot = space.active_slots(arch)[0]
    assert features[0, slot * 3 + space.ks.index(arch.ks[slot])] == 1.0


def test_accuracy_predictor_learns_ranks_and_round_trips(space, tmp_path):
    codes = space.sample_codes(600, 1)
    truth = MacsLikePredictor(space).predict(codes)
    truth = truth + np.random.default_rng(0).normal(0, 0.002, len(truth))
    predictor = AccuracyPredictor(space)
    report = predictor.fit(codes, truth, epochs=60, seed=0)
    assert report["n_val"] == 120 and report["val"]["spearman"] > 0.9 and report["val"]["kendall"] > 0.75
    assert float(predictor.base_accuracy) == pytest.approx(truth.mean(), abs=0.01)  # the training part's mean
    with torch.no_grad():
        torch_out = predictor(torch.from_numpy(one_hot_features(space, codes[:50]))).numpy()
    np.testing.assert_allclose(predictor.predict(codes[:50]), torch_out, rtol=1e-5, atol=1e-6)
    predictor.save(tmp_path / "acc.safetensors")
    loaded = AccuracyPredictor.load(tmp_path / "acc.safetensors", space)
    np.testing.assert_array_equal(loaded.predict(codes), predictor.predict(codes))
    assert loaded.report["val"]["spearman"] == report["val"]["spearman"]
    with pytest.raises(ValueError, match="trained for space 'tiny-mbv3'"):
        AccuracyPredictor.load(tmp_path / "acc.safetensors", get_space("ofa-mbv3-w1.0"))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="bad.safetensors: not a readable"):
        AccuracyPredictor.load(tmp_path / "bad.safetensors", space)
    with pytest.raises(ValueError, match="fractions"):
        predictor.fit(codes, truth * 100)


def test_macs_and_params_through_the_native_sum_are_exact(space):
    codes = space.sample_codes(50, 2)
    archs = space.decode(codes)
    np.testing.assert_allclose(op_cost_predictor(space, "macs").predict(codes) * 1e6, [space.macs(a) for a in archs])
    np.testing.assert_allclose(op_cost_predictor(space, "params").predict(codes) * 1e6, [space.params(a) for a in archs])


def test_stratified_draw_covers_the_whole_macs_range_evenly_and_extends_by_prefix(space):
    from hwnas.search.dataset import draw_codes, stratified_codes

    macs_of = op_cost_predictor(space, "macs").predict
    low, high = space.macs(space.min_arch()) / 1e6, space.macs(space.max_arch()) / 1e6
    stratified, uniform = macs_of(stratified_codes(space, 600)), macs_of(space.sample_codes(600, 0))
    assert stratified.min() == pytest.approx(low) and stratified.max() == pytest.approx(high)
    edges = np.geomspace(low, high, 6)  # five log-MACs bands: the outer ones hold few uniform archs
    counts = np.histogram(stratified, edges)[0]
    plain = np.histogram(uniform, edges)[0]
    assert counts.min() >= 0.4 * counts.max(), counts  # the pool runs out near the extremes, uniform far sooner
    assert counts[0] > 5 * plain[0] and counts[-1] > 5 * plain[-1], (counts, plain)
    assert np.array_equal(stratified_codes(space, 50), stratified_codes(space, 600)[:50])
    assert len(np.unique(stratified_codes(space, 600), axis=0)) == 600
    with pytest.raises(ValueError, match="sampling='grid'"):
        draw_codes(space, 10, 0, "grid")


def test_smallest_is_the_exact_minimum(space, latency):
    value, codes = smallest(latency)
    assert latency.predict(codes[None])[0] == pytest.approx(value)
    assert value <= latency.predict(space.sample_codes(20_000, 3)).min()
    assert value <= latency.predict(space.encode(space.min_arch()))[0] + 1e-12
    macs, macs_codes = smallest(op_cost_predictor(space, "macs"))
    assert macs * 1e6 == pytest.approx(space.macs(space.min_arch()))  # MACs are monotone: the min arch


def test_pareto_front_keeps_only_undominated_points():
    latency = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 4.0])
    accuracy = np.array([0.5, 0.7, 0.6, 0.65, 0.4, 0.8])
    assert pareto_front(latency, accuracy).tolist() == [4, 0, 1, 5]


def test_evolution_meets_the_budget_and_beats_random_search(space, latency):
    accuracy = MacsLikePredictor(space)
    low, _ = smallest(latency)
    high = float(latency.predict(space.encode(space.max_arch()))[0])
    budget = low + 0.35 * (high - low)
    result = evolution_search(space, accuracy, {"cpu": latency}, {"cpu": budget}, population=60, generations=120, seed=0)
    best = result.best[0]
    assert best.latency_ms["cpu"] <= budget and best.budgets_ms == {"cpu": budget}
    assert best.latency_ms["cpu"] == pytest.approx(latency.predict_one(best.arch))
    assert best.accuracy == pytest.approx(accuracy.predict(space.encode(best.arch))[0])
    assert best.macs == space.macs(best.arch) and best.params == space.params(best.arch)
    assert np.all(np.diff(result.history[0]) >= 0)  # elitism: the best never gets worse
    random_codes = space.sample_codes(20_000, 5)
    feasible = random_codes[latency.predict(random_codes) <= budget]
    assert best.accuracy >= accuracy.predict(feasible).max()
    front = result.pareto["cpu"]
    lat = np.array([c.latency_ms["cpu"] for c in front])
    acc = np.array([c.accuracy for c in front])
    assert np.all(np.diff(lat) >= 0) and np.all(np.diff(acc) > 0)
    assert any(abs(c.accuracy - best.accuracy) < 1e-12 for c in front)


def test_several_budgets_and_devices_run_batched_and_jointly(space, latency):
    other = LatencyPredictor(space, random_table(space, seed=7))
    accuracy = MacsLikePredictor(space)
    cpu_budgets = smallest(latency)[0] * np.array([1.6, 2.0, 2.6])
    phone_budgets = smallest(other)[0] * np.array([1.6, 2.0, 2.6])
    result = evolution_search(space, accuracy, {"cpu": latency, "phone": other},
                              {"cpu": cpu_budgets, "phone": phone_budgets}, max_macs=20e6,
                              population=40, generations=60, seed=1)
    assert len(result.best) == 3 and set(result.pareto) == {"cpu", "phone"}
    for best, cpu, phone in zip(result.best, cpu_budgets, phone_budgets):
        assert best.latency_ms["cpu"] <= cpu and best.latency_ms["phone"] <= phone and best.macs <= 20e6
    accuracies = [b.accuracy for b in result.best]
    assert accuracies == sorted(accuracies)  # looser budgets never do worse


def test_impossible_budgets_fail_at_once_naming_the_smallest(space, latency):
    accuracy = MacsLikePredictor(space)
    low, _ = smallest(latency)
    with pytest.raises(ValueError, match=rf"latency:cpu budget 0.5 ms cannot be met: the smallest achievable is {low:.4g} ms"):
        evolution_search(space, accuracy, {"cpu": latency}, {"cpu": 0.5})
    with pytest.raises(ValueError, match="macs budget 1 M cannot be met"):
        evolution_search(space, accuracy, {"cpu": latency}, {"cpu": 100.0}, max_macs=1e6)
    other = LatencyPredictor(space, random_table(space, seed=7))  # its fast ops are slow on 'cpu' and the reverse
    with pytest.raises(ValueError, match=r"cannot be met together \(proven: every subnet exceeds"):
        evolution_search(space, accuracy, {"cpu": latency, "phone": other},
                         {"cpu": 1.3 * smallest(latency)[0], "phone": 1.3 * smallest(other)[0]})
    with pytest.raises(ValueError, match="not among the latency predictors"):
        evolution_search(space, accuracy, {"cpu": latency}, {"gpu": 3.0})
    with pytest.raises(ValueError, match="equal lengths"):
        evolution_search(space, accuracy, {"cpu": latency, "b": latency}, {"cpu": [5, 6], "b": [5, 6, 7]})


def test_native_variation_breeds_children_that_fit_reproducibly(space, latency):
    from hwnas.search.evolution import EvolutionSearch

    low = smallest(latency)[0]
    search = EvolutionSearch(space, MacsLikePredictor(space), {"cpu": latency}, {"cpu": [1.6 * low, 2.4 * low]},
                             population=30, generations=0, seed=0)
    variation = search._variation
    genes, _ = search._first_population(np.repeat(np.arange(2), 30))
    parents = genes.reshape(2, 30, -1)[:, :8]
    children, costs, repaired = variation.children(parents, 123)
    again, _, _ = variation.children(parents, 123)
    np.testing.assert_array_equal(children, again)  # same seed, same children
    assert children.shape == (60, space.num_codes) and 0 <= repaired <= 60
    bounds = np.repeat([1.6 * low, 2.4 * low], 30)
    predicted = latency.predict(search.genome.codes(children))
    np.testing.assert_allclose(costs[0], predicted)
    assert np.all(predicted <= bounds * (1 + 1e-12))
    mutants = children.reshape(2, 30, -1)[:, :15]
    assert any(not (parents[0] == m).all(axis=1).any() for m in mutants[0])  # some differ from every parent
    big = np.tile(search.genome.sizes - 1, (4, 1)).astype(np.int32)  # the largest arch: over both budgets
    fixed, fixed_costs, count = variation.repair(big, np.array([0, 0, 1, 1], dtype=np.int32), 5)
    assert count == 4 and np.all(fixed_costs[0] <= np.repeat([1.6 * low, 2.4 * low], 2) * (1 + 1e-12))
    bad = parents.copy()
    bad[0, 0, -1] = 99
    with pytest.raises(ValueError, match="parents row 0 gene 45 = 99 out of range"):
        variation.children(bad, 1)


def test_measured_accuracies_outrank_the_predictor_and_never_break_the_budget(space, latency, tmp_path):
    """An arch the predictor underrates (as it underrates the sandwich-trained largest subnet) wins once its
    measurement is given; a measured arch over the budget is never returned; the file round-trips."""
    from hwnas.search.measured import MeasuredAccuracies

    accuracy = MacsLikePredictor(space)
    low, _ = smallest(latency)
    budget = 2.0 * low
    pool = space.sample_codes(20_000, 11)
    lat = latency.predict(pool)
    fits, over = pool[lat <= budget], pool[lat > 1.5 * budget]
    underrated = fits[np.argmin(accuracy.predict(fits))]  # the predictor's worst feasible arch ...
    measured = MeasuredAccuracies(np.stack([underrated, over[0], underrated]), np.array([0.99, 1.0, 0.97]))
    plain = evolution_search(space, accuracy, {"cpu": latency}, {"cpu": budget}, population=40, generations=30, seed=0)
    assert plain.best[0].accuracy_source == "predicted" and plain.best[0].accuracy < 0.98
    result = evolution_search(space, accuracy, {"cpu": latency}, {"cpu": budget}, population=40, generations=30,
                              seed=0, measured=measured)
    best = result.best[0]
    assert space.encode(best.arch)[0].tolist() == underrated.tolist()  # ... measured at 99% and 97%: it wins
    assert best.accuracy == pytest.approx(0.98) and best.accuracy_source == "measured"  # the mean of both
    assert best.latency_ms["cpu"] <= budget
    path = measured.save(tmp_path / "measured.jsonl", space)
    loaded = MeasuredAccuracies.load(path, space)
    np.testing.assert_array_equal(loaded.codes, measured.codes)
    np.testing.assert_allclose(loaded.accuracies, measured.accuracies)


def test_measured_accuracy_file_errors_name_the_line(space, tmp_path):
    from hwnas.search.measured import MeasuredAccuracies

    good = '{"arch": ' + space.min_arch().to_json() + ', "accuracy": 0.8}\n'
    bad_arch = '{"arch": {"ks": [9], "e": [3], "d": [2], "r": 24}, "accuracy": 0.8}\n'
    cases = {"arch.jsonl": (good + bad_arch, r"arch.jsonl:2: not an arch of tiny-mbv3"),
             "range.jsonl": (good + good.replace("0.8", "80.5"), r"range.jsonl:2: accuracy 80.5 is not a fraction"),
             "nan.jsonl": (good.replace("0.8", "NaN"), r"nan.jsonl:1: accuracy nan is not a fraction"),
             "json.jsonl": ("{not json\n", r"json.jsonl:1: not an arch"), "empty.jsonl": ("\n", "holds no measured")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            MeasuredAccuracies.load(tmp_path / name, space)
    with pytest.raises(FileNotFoundError, match="no such measured-accuracy file"):
        MeasuredAccuracies.load(tmp_path / "missing.jsonl", space)
