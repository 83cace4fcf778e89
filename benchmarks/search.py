"""Evolutionary search speed and quality: OFA's EvolutionFinder vs hwnas, side by side, on the Note10 LUT.

Run: ``python benchmarks/search.py`` (needs OFA's Note10 tables in ../shared; the second device of the
Pareto-front row is DynamicOFA's Jetson GPU table, a benchmark fixture only). Prints a markdown section.

- Baseline: OFA's ``EvolutionFinder`` loop as OFA writes it — archs as Python dicts, one at a time,
  latency from a Python dict of the YAML tables (key assembled per op), children redrawn until they fit
  the budget (rejection sampling), accuracy from the MLP in torch on each generation's children.
- hwnas: ``hwnas.search.evolution_search`` — same population (100), generations (500), parent and
  mutation ratios, mutation probability and the *same MLP weights*.
- Accuracy MLP: OFA's shape (3 × 400), fitted here to a synthetic accuracy landscape (saturating in
  MACs, a resolution term and a fixed random effect per gene choice), since no ImageNet accuracies of
  Note10 subnets are at hand; both searches optimise the same function, which is all that is compared.
- Quality: the best predicted accuracy among 200,000 random archs within the budget, same MLP.
"""
from __future__ import annotations

import copy
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lut_query import NOTE10, load_tables, ofa_style_predict  # noqa: E402 - the baseline's latency model

from hwnas.latency import LatencyPredictor, import_ofa_tables  # noqa: E402
from hwnas.search import AccuracyPredictor, evolution_search, op_cost_predictor  # noqa: E402
from hwnas.search.encoding import one_hot_features  # noqa: E402
from hwnas.space import get_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JETSON_GPU = ROOT.parent / "shared" / "external" / "ofa_luts" / "dynamicofa_jetson" / "jetson_gpu"
POPULATION, GENERATIONS = 100, 500
BASELINE_BUDGETS = (15.0, 20.0, 25.0)


# --- the baseline: OFA's EvolutionFinder, as written in ofa/nas/search_algorithm/evolution.py ----------
class OFAArchManager:
    def __init__(self, space, resolutions):
        self.num_blocks, self.num_stages = space.num_blocks, space.num_stages
        self.kernel_sizes, self.expand_ratios, self.depths = list(space.ks), list(space.expand), list(space.depth)
        self.resolutions = list(resolutions)

    def random_sample(self):
        d = [random.choice(self.depths) for _ in range(self.num_stages)]
        ks = [random.choice(self.kernel_sizes) for _ in range(self.num_blocks)]
        e = [random.choice(self.expand_ratios) for _ in range(self.num_blocks)]
        return {"ks": ks, "e": e, "d": d, "r": [random.choice(self.resolutions)]}

    def random_resample(self, sample, i):
        sample["ks"][i] = random.choice(self.kernel_sizes)
        sample["e"][i] = random.choice(self.expand_ratios)

    def random_resample_depth(self, sample, i):
        sample["d"][i] = random.choice(self.depths)

    def random_resample_resolution(self, sample):
        sample["r"][0] = random.choice(self.resolutions)


class OFAEvolutionFinder:
    def __init__(self, constraint, latency_of, accuracy_of, manager, mutate_prob=0.1, population_size=POPULATION,
                 max_time_budget=GENERATIONS, parent_ratio=0.25, mutation_ratio=0.5):
        self.constraint, self.latency_of, self.accuracy_of, self.manager = constraint, latency_of, accuracy_of, manager
        self.mutate_prob, self.population_size, self.max_time_budget = mutate_prob, population_size, max_time_budget
        self.parent_ratio, self.mutation_ratio = parent_ratio, mutation_ratio
        self.redraws = 0

    def random_sample(self):
        while True:
            sample = self.manager.random_sample()
            efficiency = self.latency_of(sample)
            if efficiency <= self.constraint:
                return sample, efficiency
            self.redraws += 1

    def mutate_sample(self, sample):
        while True:
            new_sample = copy.deepcopy(sample)
            if random.random() < self.mutate_prob:
                self.manager.random_resample_resolution(new_sample)
            for i in range(self.manager.num_blocks):
                if random.random() < self.mutate_prob:
                    self.manager.random_resample(new_sample, i)
            for i in range(self.manager.num_stages):
                if random.random() < self.mutate_prob:
                    self.manager.random_resample_depth(new_sample, i)
            efficiency = self.latency_of(new_sample)
            if efficiency <= self.constraint:
                return new_sample, efficiency
            self.redraws += 1

    def crossover_sample(self, sample1, sample2):
        while True:
            new_sample = copy.deepcopy(sample1)
            for key in new_sample:
                for i in range(len(new_sample[key])):
                    new_sample[key][i] = random.choice([sample1[key][i], sample2[key][i]])
            efficiency = self.latency_of(new_sample)
            if efficiency <= self.constraint:
                return new_sample, efficiency
            self.redraws += 1

    def run_evolution_search(self):
        mutation_numbers = int(round(self.mutation_ratio * self.population_size))
        parents_size = int(round(self.parent_ratio * self.population_size))
        best_valids, best_info, population = [-100], None, []
        child_pool, efficiency_pool = [], []
        for _ in range(self.population_size):
            sample, efficiency = self.random_sample()
            child_pool.append(sample)
            efficiency_pool.append(efficiency)
        accs = self.accuracy_of(child_pool)
        for i in range(self.population_size):
            population.append((accs[i].item(), child_pool[i], efficiency_pool[i]))
        for _ in range(self.max_time_budget):
            parents = sorted(population, key=lambda x: x[0])[::-1][:parents_size]
            acc = parents[0][0]
            if acc > best_valids[-1]:
                best_valids.append(acc)
                best_info = parents[0]
            else:
                best_valids.append(best_valids[-1])
            population = parents
            child_pool, efficiency_pool = [], []
            for _ in range(mutation_numbers):
                par_sample = population[np.random.randint(parents_size)][1]
                new_sample, efficiency = self.mutate_sample(par_sample)
                child_pool.append(new_sample)
                efficiency_pool.append(efficiency)
            for _ in range(self.population_size - mutation_numbers):
                par_sample1 = population[np.random.randint(parents_size)][1]
                par_sample2 = population[np.random.randint(parents_size)][1]
                new_sample, efficiency = self.crossover_sample(par_sample1, par_sample2)
                child_pool.append(new_sample)
                efficiency_pool.append(efficiency)
            accs = self.accuracy_of(child_pool)
            for i in range(self.population_size):
                population.append((accs[i].item(), child_pool[i], efficiency_pool[i]))
        return best_valids, best_info


def ofa_arch_encoding(space, sample):
    """OFA's AccuracyPredictor encoding, per sample in Python (ks/e one-hots of active blocks, r one-hot)."""
    ks_map = {k: i for i, k in enumerate(space.ks)}
    e_map = {e: i for i, e in enumerate(space.expand)}
    r_map = {r: i for i, r in enumerate(space.resolutions)}
    K, E, max_depth = len(space.ks), len(space.expand), space.num_blocks // space.num_stages
    ks_onehot = [0] * (space.num_blocks * K)
    e_onehot = [0] * (space.num_blocks * E)
    r_onehot = [0] * len(space.resolutions)
    for stage in range(space.num_stages):
        for j in range(max_depth):
            if j < sample["d"][stage]:
                block = stage * max_depth + j
                ks_onehot[block * K + ks_map[sample["ks"][block]]] = 1
                e_onehot[block * E + e_map[sample["e"][block]]] = 1
    r_onehot[r_map[sample["r"][0]]] = 1
    return ks_onehot + e_onehot + r_onehot


# --- the shared accuracy model ------------------------------------------------------------------
def synthetic_accuracy_mlp(space, served_codes: np.ndarray) -> AccuracyPredictor:
    """OFA's MLP fitted to a synthetic landscape: saturating in MACs, + resolution, + a random effect per gene."""
    rng = np.random.default_rng(0)
    codes = space.sample_codes(4000, rng)
    codes[:, -1] = rng.choice(served_codes, len(codes))
    macs = op_cost_predictor(space, "macs").predict(codes)
    features = one_hot_features(space, codes)
    effects = rng.normal(0, 0.0015, features.shape[1])
    target = 0.70 + 0.09 * (1 - np.exp(-macs / 250.0)) + 0.0004 * codes[:, -1] + features @ effects
    predictor = AccuracyPredictor(space)
    torch.manual_seed(0)
    predictor.fit(codes, np.clip(target, 0, 1), epochs=60, seed=0)
    return predictor


def main() -> int:
    if not NOTE10.is_dir():
        print("## Evolutionary search (`benchmarks/search.py`)\n\nSkipped: OFA's Note10 tables not found.\n")
        return 0
    torch.set_num_threads(1)
    space = get_space("ofa-mbv3-w1.2")
    table, per_r, source = load_tables(space)
    note10 = LatencyPredictor(space, table)
    served = np.flatnonzero(note10.resolution_mask)
    served_r = [space.resolutions[i] for i in served]
    mlp = synthetic_accuracy_mlp(space, served)
    load = os.getloadavg()[0]

    def ofa_accuracy(samples):
        features = torch.tensor([ofa_arch_encoding(space, s) for s in samples], dtype=torch.float32)
        with torch.no_grad():
            return mlp(features)

    def ofa_latency(sample):
        return ofa_style_predict({"ks": sample["ks"], "e": sample["e"], "d": sample["d"], "r": sample["r"][0]}, per_r)

    rows = []
    random_codes = space.sample_codes(200_000, np.random.default_rng(1))
    random_codes[:, -1] = np.random.default_rng(2).choice(served, len(random_codes))
    random_latency, random_accuracy = note10.predict(random_codes), mlp.predict(random_codes)
    for budget in BASELINE_BUDGETS:
        random.seed(0)
        np.random.seed(0)
        finder = OFAEvolutionFinder(budget, ofa_latency, ofa_accuracy, OFAArchManager(space, served_r))
        start = time.perf_counter()
        _, (ofa_acc, _, ofa_lat) = finder.run_evolution_search()
        ofa_s = time.perf_counter() - start
        ours_s = []
        for seed in range(3):  # best of 3: the machine is shared
            start = time.perf_counter()
            result = evolution_search(space, mlp, {"note10": note10}, {"note10": budget}, population=POPULATION,
                                      generations=GENERATIONS, seed=seed)
            ours_s.append(time.perf_counter() - start)
        best = result.best[0]
        feasible = random_latency <= budget
        rows.append((budget, ofa_s, finder.redraws, ofa_acc, ofa_lat, min(ours_s), best.accuracy,
                     best.latency_ms["note10"], float(random_accuracy[feasible].max()), int(feasible.sum())))

    budgets10 = np.linspace(12.0, 30.0, 10)
    front_line = "Jetson GPU table not found: the two-device row is skipped."
    if JETSON_GPU.is_dir():
        jetson = LatencyPredictor(space, import_ofa_tables(sorted(JETSON_GPU.glob("*_lookup_table.json")),
                                                                 device="Jetson GPU (DynamicOFA)"))
        low_j = float(jetson.predict(space.encode(space.min_arch(served_r[0])))[0])
        high_j = float(jetson.predict(space.encode(space.max_arch(served_r[-1])))[0])
        budgets_j = np.linspace(low_j + 0.15 * (high_j - low_j), high_j, 10)
        times = []
        for seed in range(3):
            start = time.perf_counter()
            front = evolution_search(space, mlp, {"note10": note10, "jetson_gpu": jetson},
                                     {"note10": budgets10, "jetson_gpu": budgets_j}, population=POPULATION,
                                     generations=GENERATIONS, seed=seed)
            times.append(time.perf_counter() - start)
        met = all(b.latency_ms["note10"] <= n + 1e-9 and b.latency_ms["jetson_gpu"] <= j + 1e-9
                  for b, n, j in zip(front.best, budgets10, budgets_j))
        front_line = (f"10 budgets × 2 devices (Note10 {budgets10[0]:.0f}–{budgets10[-1]:.0f} ms jointly with Jetson GPU "
                      f"{budgets_j[0]:.1f}–{budgets_j[-1]:.1f} ms), one batched search: **{min(times):.2f} s** "
                      f"(best of 3; goal ≤ 3 s; every budget met: {met}); Pareto fronts of "
                      f"{len(front.pareto['note10'])} and {len(front.pareto['jetson_gpu'])} archs.")

    print("## Evolutionary search (`benchmarks/search.py`)\n")
    print(f"Space `ofa-mbv3-w1.2`, {source}; population {POPULATION}, {GENERATIONS} generations, OFA's parent "
          f"(0.25) and mutation (0.5) ratios and mutation probability (0.1); the same MLP (3 × 400) on both sides, "
          f"fitted to a synthetic accuracy landscape. 1 thread; load average {load:.2f} at start. "
          f"hwnas: best of 3 seeds' wall times. Random: 200,000 archs, best predicted accuracy within the budget.\n")
    print("| budget | OFA EvolutionFinder | redraws | OFA acc / latency | hwnas | speed-up | hwnas acc / latency "
          "| best of 200k random | hwnas − random |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for budget, ofa_s, redraws, ofa_acc, ofa_lat, ours, acc, lat, rand, n_feasible in rows:
        print(f"| {budget:.0f} ms | {ofa_s:.1f} s | {redraws:,} | {100 * ofa_acc:.2f}% / {ofa_lat:.2f} ms | {ours:.3f} s | "
              f"{ofa_s / ours:.0f}× | {100 * acc:.2f}% / {lat:.2f} ms | {100 * rand:.2f}% ({n_feasible:,} fit) | "
              f"{100 * (acc - rand):+.2f} pts |")
    worst = max(r[5] for r in rows)
    speedups = [r[1] / r[5] for r in rows]
    print(f"\nGoal: hwnas ≤ 0.3 s per budget and ≥ 20× the baseline: slowest {worst:.3f} s, speed-up "
          f"{min(speedups):.0f}–{max(speedups):.0f}× — {'met' if worst <= 0.3 and min(speedups) >= 20 else 'NOT met'}. "
          f"Quality goal (within 0.2 points of the best random arch, or better): "
          f"{'met' if all(r[6] >= r[8] - 0.002 for r in rows) else 'NOT met'}.\n")
    print(front_line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
