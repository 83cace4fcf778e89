"""Latency-constrained evolutionary search, vectorised over the population and over budgets.

OFA's loop, without its costs: OFA mutates and crosses one arch at a time, looks each one's latency up
op by op in a Python dict, and redraws until a child fits the budget (a rejection loop that never
ends when the budget is below the smallest subnet). Here a generation is one native call that breeds
every run's (budget's) children from int32 genomes and checks them against every constraint in the
compiled tables (``hwnas._C.Variation``, csrc/variation.h), one MLP call for their accuracy, and a
few array operations for selection. A child slot redraws variations of its parents until one fits,
as OFA does, but at most ``MAX_DRAWS`` times; a slot with none that fits is *repaired* (genes stepped
down to cheaper choices until it fits), so no loop is unbounded. Budgets below the smallest
achievable value are refused before the search starts, with that value in the message.

Selection follows OFA: the best quarter of the population survives (elitism), half of the new
children are mutants (each gene redrawn with ``mutate_prob``), the others uniform crossovers of two
survivors. Every arch evaluated on the way feeds the accuracy-latency Pareto front of each device.

Measured accuracies (``measured=``, :mod:`hwnas.search.measured`) take the predictor's place for the archs
they cover, and the best measured archs that fit a run seed its first population: the search then never
returns a predicted arch over a measured one that is better and fits.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import _C
from ..latency.predictor import LatencyPredictor
from ..space.arch import Arch
from ..space.base import SearchSpace
from .accuracy_predictor import AccuracyPredictor
from .costs import minimize_additive, op_cost_predictor, smallest
from .measured import MeasuredAccuracies
from .pareto import ParetoArchive

MAX_DRAWS = 10  # variations a child slot draws before its first one is repaired instead
INITIAL_DRAWS = 20_000  # uniform random archs drawn per run for the first population; those that fit are kept
REPAIR_ROUNDS = 64
REPAIR_MIN_STEP = 0.1  # per-gene step-down probability of a row barely over budget


@dataclass(frozen=True)
class Limit:
    """One constraint: a native additive cost (latency in ms, or MACs/params in millions) and its bound per run."""

    name: str
    predictor: LatencyPredictor
    bounds: np.ndarray  # [runs]; inf where the run leaves it free
    unit: str


@dataclass
class Candidate:
    """An arch with its predicted accuracy and costs (latency per device in ms, MACs and params)."""

    arch: Arch
    accuracy: float
    latency_ms: dict[str, float]
    macs: int
    params: int
    budgets_ms: dict[str, float] = field(default_factory=dict)
    accuracy_source: str = "predicted"  # or "measured": the arch is among the measured accuracies given

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "accuracy": self.accuracy, "accuracy_source": self.accuracy_source,
                "latency_ms": self.latency_ms, "macs": self.macs, "params": self.params, "budgets_ms": self.budgets_ms}


@dataclass
class SearchResult:
    """Best arch per run (one run per budget set) and the Pareto front of accuracy vs latency per device."""

    best: list[Candidate]
    pareto: dict[str, list[Candidate]]
    history: np.ndarray  # [runs, generations + 1]: best feasible predicted accuracy after each generation
    seconds: float

    @property
    def arch(self) -> Arch:
        return self.best[0].arch

    @property
    def accuracy(self) -> float:
        return self.best[0].accuracy

    @property
    def latency_ms(self) -> dict[str, float]:
        return self.best[0].latency_ms

    def to_dict(self) -> dict[str, Any]:
        return {"best": [c.to_dict() for c in self.best],
                "pareto": {device: [c.to_dict() for c in front] for device, front in self.pareto.items()},
                "seconds": self.seconds}


class Genome:
    """Int genes per code column: an index into that column's allowed code values.

    Every column allows all its codes except resolution, which is limited to the resolutions every
    latency table serves; lower gene = smaller choice (kernel, expand, depth, resolution).
    """

    def __init__(self, space: SearchSpace, resolution_codes: Sequence[int]) -> None:
        self.space = space
        self.resolution_codes = np.asarray(sorted(resolution_codes), dtype=np.int32)
        self.sizes = space.code_cardinalities().astype(np.int64)
        self.sizes[-1] = len(self.resolution_codes)
        # a repair step moves every gene about as far across its range: one of 3 kernels, ~8 of 17 resolutions
        self.step = np.maximum(1, (self.sizes - 1) // 2).astype(np.int32)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (rng.random((n, len(self.sizes))) * self.sizes).astype(np.int32)

    def codes(self, genes: np.ndarray) -> np.ndarray:
        codes = genes.copy()
        codes[:, -1] = self.resolution_codes[genes[:, -1]]
        return codes

    def genes(self, codes: np.ndarray) -> np.ndarray:
        genes = np.array(codes, dtype=np.int32, copy=True).reshape(-1, len(self.sizes))
        genes[:, -1] = np.searchsorted(self.resolution_codes, genes[:, -1])
        return genes

    def relevant(self, genes: np.ndarray) -> np.ndarray:
        """bool like ``genes``: False for the kernel and expand genes of slots beyond their stage's depth
        (changing them changes nothing), True elsewhere."""
        space = self.space
        B, G = space.num_blocks, space.num_stages
        depth = np.asarray(space.depth)[genes[:, 2 * B:2 * B + G]]  # [N, G]
        max_depth = B // G
        active = (np.arange(B) % max_depth)[None, :] < depth[:, np.arange(B) // max_depth]
        mask = np.ones(genes.shape, dtype=bool)
        mask[:, :B] = active
        mask[:, B:2 * B] = active
        return mask


def _as_bounds(value: float | Sequence[float], runs: int, what: str) -> np.ndarray:
    bounds = np.broadcast_to(np.asarray(value, dtype=np.float64), (runs,)).copy() if np.ndim(value) == 0 \
        else np.asarray(value, dtype=np.float64)
    if bounds.shape != (runs,):
        raise ValueError(f"{what}: {len(bounds)} budgets, but other constraints give {runs}")
    if not np.all(np.isfinite(bounds)) or np.any(bounds <= 0):
        raise ValueError(f"{what}: budgets must be positive finite numbers, got {bounds.tolist()}")
    return bounds


def _run_count(budgets: Mapping[str, float | Sequence[float]]) -> int:
    lengths = {len(v) for v in budgets.values() if np.ndim(v) == 1}
    if len(lengths) > 1:
        raise ValueError(f"budget lists must have equal lengths (one entry per run), got {sorted(lengths)}")
    return lengths.pop() if lengths else 1


class EvolutionSearch:
    """One batched evolutionary search; see :func:`evolution_search` for the parameters."""

    def __init__(self, space: SearchSpace, accuracy_predictor: AccuracyPredictor,
                 latency_predictors: Mapping[str, LatencyPredictor], budgets: Mapping[str, float | Sequence[float]],
                 max_macs: float | Sequence[float] | None = None, max_params: float | Sequence[float] | None = None,
                 population: int = 100, generations: int = 500, parent_ratio: float = 0.25,
                 mutation_ratio: float = 0.5, mutate_prob: float = 0.1, seed: int = 0,
                 measured: MeasuredAccuracies | None = None) -> None:
        if accuracy_predictor.space.content_hash != space.content_hash:
            raise ValueError(f"the accuracy predictor is for space {accuracy_predictor.space.name!r}, not {space.name!r}")
        unknown = sorted(set(budgets) - set(latency_predictors))
        if unknown:
            raise ValueError(f"budgets name {unknown}, which are not among the latency predictors "
                             f"{sorted(latency_predictors)}")
        for name, predictor in latency_predictors.items():
            if predictor.space.content_hash != space.content_hash:
                raise ValueError(f"latency predictor {name!r} is for space {predictor.space.name!r}, not {space.name!r}")
        if population < 4 or generations < 0 or not 0 < parent_ratio < 1 or not 0 <= mutation_ratio <= 1:
            raise ValueError(f"population={population} (>= 4), generations={generations} (>= 0), parent_ratio="
                             f"{parent_ratio} and mutation_ratio={mutation_ratio} (in (0, 1)) are out of range")
        self.space, self.accuracy_predictor = space, accuracy_predictor
        self.latency_predictors = dict(latency_predictors)
        sizes = {"macs": max_macs, "params": max_params}
        self.runs = _run_count({**budgets, **{k: v for k, v in sizes.items() if v is not None}})
        self.limits = [Limit(f"latency:{name}", self.latency_predictors[name], _as_bounds(value, self.runs, name), "ms")
                       for name, value in budgets.items()]
        for cost, value in sizes.items():
            if value is not None:
                bounds = _as_bounds(value, self.runs, f"max_{cost}") / 1e6
                self.limits.append(Limit(cost, op_cost_predictor(space, cost), bounds, "M"))
        self.population, self.generations = int(population), int(generations)
        self.parents = max(2, round(parent_ratio * population))
        self.mutants = round(mutation_ratio * population)
        self.mutate_prob = float(mutate_prob)
        self.rng = np.random.default_rng(seed)
        served = set(range(len(space.resolutions)))
        for predictor in self.latency_predictors.values():
            served &= {i for i, ok in enumerate(predictor.resolution_mask) if ok}
        if not served:
            raise ValueError(f"the latency tables {sorted(self.latency_predictors)} serve no resolution in common")
        self.genome = Genome(space, sorted(served))
        self._bounds = np.stack([limit.bounds for limit in self.limits]) if self.limits else np.ones((0, self.runs))
        self.anchors = self._feasible_anchors()
        self._variation = self._native_variation()
        self._hash_weights = self.rng.integers(1, 2**63, len(self.genome.sizes), dtype=np.uint64) | np.uint64(1)
        self._cache: dict[int, float] = {}
        self._macs = op_cost_predictor(space, "macs")
        self._params = op_cost_predictor(space, "params")
        self._measured_genes, self._measured_keys = self._use_measured(measured)

    def _use_measured(self, measured: MeasuredAccuracies | None) -> tuple[np.ndarray, set[int]]:
        """Put measured accuracies in the cache (an arch measured twice: the mean), for the archs at a resolution
        this search may use; returns their genes and cache keys."""
        if measured is None or not len(measured):
            return np.zeros((0, len(self.genome.sizes)), dtype=np.int32), set()
        codes = np.asarray(measured.codes, dtype=np.int32)
        if codes.shape[1] != len(self.genome.sizes):
            raise ValueError(f"measured accuracies{' from ' + measured.source if measured.source else ''} have "
                             f"{codes.shape[1]} code columns; space {self.space.name!r} has {len(self.genome.sizes)}")
        usable = np.isin(codes[:, -1], self.genome.resolution_codes)
        genes = self.genome.genes(codes[usable])
        keys = self._keys(genes)
        sums: dict[int, list[float]] = {}
        for key, accuracy in zip(keys, np.asarray(measured.accuracies)[usable].tolist()):
            sums.setdefault(key, []).append(accuracy)
        self._cache.update({key: float(np.mean(values)) for key, values in sums.items()})
        _, first = np.unique(np.asarray(keys, dtype=np.uint64), return_index=True)
        return genes[np.sort(first)], set(sums)

    def _keys(self, genes: np.ndarray) -> list[int]:
        """Cache keys: a hash of the genes that ignores those of slots beyond their stage's depth."""
        canonical = genes * self.genome.relevant(genes)
        return (canonical.astype(np.uint64) * self._hash_weights).sum(axis=1).tolist()  # wraps mod 2**64

    # --- feasibility ----------------------------------------------------------------------------
    def _feasible_anchors(self) -> np.ndarray:
        """Per run, the genes of one arch meeting every constraint; ValueError naming what cannot be met.

        Each limit alone is checked against its exact minimum. Jointly, the per-limit minimisers are
        tried first; if none fits every limit, a Lagrangian search minimises a weighted sum of the
        limits (exactly, by :func:`minimize_additive`), raising the weights of the violated ones.
        """
        resolution_codes = self.genome.resolution_codes
        minima = {limit.name: smallest(limit.predictor, resolution_codes) for limit in self.limits}
        for limit in self.limits:
            value, codes = minima[limit.name]
            low = np.flatnonzero(limit.bounds < value)
            if len(low):
                arch = self.space.decode(codes[None])[0]
                raise ValueError(f"{limit.name} budget {limit.bounds[low[0]]:g} {limit.unit} cannot be met: the smallest "
                                 f"achievable is {value:.4g} {limit.unit} (arch {arch.to_json()})")
        zeros = self.genome.codes(np.zeros((1, len(self.genome.sizes)), dtype=np.int32))[0]
        candidates = np.stack([codes for _, codes in minima.values()] + [zeros]).astype(np.int32)
        costs = self._costs(candidates)  # [limits, candidates]
        dense = [limit.predictor.dense() for limit in self.limits]
        anchors = np.zeros((self.runs, len(self.genome.sizes)), dtype=np.int32)
        for run in range(self.runs):
            bounds = np.array([limit.bounds[run] for limit in self.limits])
            fits = np.flatnonzero(np.all(costs <= bounds[:, None] * (1 + 1e-12), axis=0))
            codes, bound = (candidates[fits[0]], 0.0) if len(fits) else self._lagrangian(dense, bounds, resolution_codes)
            if codes is None:
                described = ", ".join(f"{limit.name} ≤ {limit.bounds[run]:g} {limit.unit} (smallest alone "
                                      f"{minima[limit.name][0]:.4g})" for limit in self.limits)
                why = (f"proven: every subnet exceeds a weighted mix of them by {100 * (bound - 1):.1f}%" if bound > 1
                       else "none found by the Lagrangian search")
                raise ValueError(f"the budgets of run {run} cannot be met together ({why}): {described}")
            anchors[run] = self.genome.genes(codes[None])[0]
        return anchors

    def _lagrangian(self, dense: list[tuple[np.ndarray, np.ndarray]], bounds: np.ndarray,
                    resolution_codes: np.ndarray, rounds: int = 200) -> tuple[np.ndarray | None, float]:
        """(codes meeting every bound, 0) or (None, best dual bound): with weights summing to 1, the exact
        minimum of Σ w·cost/bound exceeding 1 proves that no arch meets all bounds."""
        weights = np.full(len(bounds), 1.0 / len(bounds))
        dual = 0.0
        for _ in range(rounds):
            fixed = sum(w * f / b for w, (f, _), b in zip(weights, dense, bounds))
            blocks = sum(w * k / b for w, (_, k), b in zip(weights, dense, bounds))
            value, codes = minimize_additive(self.space, fixed, blocks, resolution_codes)
            dual = max(dual, value)
            ratio = self._costs(codes[None])[:, 0] / bounds
            if np.all(ratio <= 1 + 1e-12):
                return codes, 0.0
            if dual > 1 + 1e-9:
                break
            weights = weights * np.exp(np.clip(ratio - 1.0, 0.0, None) * 4.0)
            weights /= weights.sum()
        return None, dual

    def _costs(self, codes: np.ndarray) -> np.ndarray:
        costs = np.empty((len(self.limits), len(codes)))
        for row, limit in enumerate(self.limits):
            costs[row] = limit.predictor.predict(codes)
        return costs

    def _violation(self, costs: np.ndarray, runs: np.ndarray) -> np.ndarray:
        """Sum over limits of the relative excess over the run's bound (0 when every limit is met)."""
        return np.maximum(costs / self._bounds[:, runs] - 1.0, 0.0).sum(axis=0)

    def _native_variation(self) -> Any:
        """The native breeder for this search's genome, limits and anchors (csrc/variation.h)."""
        space, genome = self.space, self.genome
        return _C.Variation(
            tuple(limit.predictor._native for limit in self.limits), self._bounds, self.anchors,
            genome.sizes.astype(np.int32).tolist(), genome.resolution_codes.tolist(), genome.step.tolist(),
            space.num_blocks, space.num_stages, [b // space.max_depth for b in range(space.num_blocks)],
            [b % space.max_depth for b in range(space.num_blocks)], list(space.depth), self.population,
            self.mutants, self.mutate_prob, MAX_DRAWS, REPAIR_ROUNDS, REPAIR_MIN_STEP)

    def _seed(self) -> int:
        return int(self.rng.integers(0, 2**63))

    def _first_population(self, child_runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``population`` archs per run drawn uniformly among those that fit (OFA's rejection sampling, as
        one batch of ``INITIAL_DRAWS``); places no draw filled are repaired random archs."""
        R, P, S = self.runs, self.population, len(self.genome.sizes)
        drawn = self.genome.random(self.rng, R * INITIAL_DRAWS)
        drawn_runs = np.repeat(np.arange(R), INITIAL_DRAWS)
        drawn_costs = self._costs(self.genome.codes(drawn))
        fits = (self._violation(drawn_costs, drawn_runs) <= 0).reshape(R, INITIAL_DRAWS)
        genes = np.empty((R * P, S), dtype=np.int32)
        costs = np.empty((len(self.limits), R * P))
        missing = []
        for run in range(R):
            rows = run * INITIAL_DRAWS + np.flatnonzero(fits[run])[:P]
            genes[run * P:run * P + len(rows)] = drawn[rows]
            costs[:, run * P:run * P + len(rows)] = drawn_costs[:, rows]
            missing.extend(range(run * P + len(rows), (run + 1) * P))
        if missing:
            missing = np.asarray(missing)
            genes[missing], costs[:, missing], _ = self._variation.repair(
                self.genome.random(self.rng, len(missing)), child_runs[missing].astype(np.int32), self._seed())
        self._seed_measured(genes, costs)
        return genes, costs

    def _seed_measured(self, genes: np.ndarray, costs: np.ndarray) -> None:
        """Per run, the best ``parents`` measured archs that fit take the first places of its population (in place)."""
        if not len(self._measured_genes):
            return
        P = self.population
        measured_costs = self._costs(self.genome.codes(self._measured_genes))
        accuracy = np.array([self._cache[k] for k in self._keys(self._measured_genes)])
        for run in range(self.runs):
            fits = np.flatnonzero(self._violation(measured_costs, np.full(len(accuracy), run)) <= 0)
            best = fits[np.argsort(-accuracy[fits], kind="stable")][:self.parents]
            rows = run * P + np.arange(len(best))
            genes[rows], costs[:, rows] = self._measured_genes[best], measured_costs[:, best]

    def accuracy(self, genes: np.ndarray) -> np.ndarray:
        """Predicted accuracy of genes ``[N, S]``; archs seen before come from a cache (more than half of the
        children of a converging population are archs it has already evaluated), measured archs from their
        measurement. The key ignores the genes of slots beyond their stage's depth, which do not change the arch."""
        keys = self._keys(genes)
        get = self._cache.get
        values = np.array([get(k, np.nan) for k in keys], dtype=np.float64)
        missing = np.flatnonzero(np.isnan(values))
        if len(missing):
            values[missing] = self.accuracy_predictor.predict(self.genome.codes(genes[missing]))
            self._cache.update(zip((keys[i] for i in missing), values[missing].tolist()))
        return values

    # --- the loop -------------------------------------------------------------------------------
    def run(self, progress: bool = False) -> SearchResult:
        start = time.perf_counter()
        R, P, n_par = self.runs, self.population, self.parents
        child_runs = np.repeat(np.arange(R), P)
        run_rows = np.arange(R)[:, None]
        genes, costs = self._first_population(child_runs)
        fitness = self.accuracy(genes)
        archive = ParetoArchive(list(self.latency_predictors))
        self._record(archive, genes, fitness, costs)
        genes, costs, fitness = genes.reshape(R, P, -1), costs.reshape(len(self.limits), R, P), fitness.reshape(R, P)
        history = np.empty((R, self.generations + 1))
        history[:, 0] = fitness.max(axis=1)
        for generation in tqdm(range(self.generations), desc="evolution", unit="gen", disable=not progress):
            keep = np.argpartition(-fitness, n_par - 1, axis=1)[:, :n_par]  # the best n_par of each run
            parents, parent_fitness, parent_costs = genes[run_rows, keep], fitness[run_rows, keep], costs[:, run_rows, keep]
            children, child_costs, _ = self._variation.children(parents, self._seed())
            child_fitness = self.accuracy(children)
            self._record(archive, children, child_fitness, child_costs)
            genes = np.concatenate([parents, children.reshape(R, P, -1)], axis=1)
            fitness = np.concatenate([parent_fitness, child_fitness.reshape(R, P)], axis=1)
            costs = np.concatenate([parent_costs, child_costs.reshape(len(self.limits), R, P)], axis=2)
            history[:, generation + 1] = fitness.max(axis=1)
        best = np.argmax(fitness, axis=1)
        winners = self._candidates(genes[np.arange(R), best])
        for run, candidate in enumerate(winners):
            candidate.budgets_ms = {limit.name.split(":", 1)[1]: float(limit.bounds[run])
                                    for limit in self.limits if limit.name.startswith("latency:")}
        fronts = {}
        for device, (front_codes, _) in archive.fronts().items():
            fronts[device] = self._candidates(self.genome.genes(front_codes))
        return SearchResult(winners, fronts, history, time.perf_counter() - start)

    def _record(self, archive: ParetoArchive, genes: np.ndarray, accuracy: np.ndarray, costs: np.ndarray) -> None:
        """Feed evaluated archs to the Pareto archive; latencies already computed as constraints are reused."""
        codes = self.genome.codes(genes)
        rows = {limit.name: i for i, limit in enumerate(self.limits)}
        latencies = {name: costs[rows[f"latency:{name}"]] if f"latency:{name}" in rows else predictor.predict(codes)
                     for name, predictor in self.latency_predictors.items()}
        archive.add(codes, accuracy, latencies)

    def _candidates(self, genes: np.ndarray) -> list[Candidate]:
        """Archs with their predicted accuracy and costs."""
        genes = np.atleast_2d(genes)
        codes = self.genome.codes(genes)
        accuracy = self.accuracy(genes)
        sources = ["measured" if key in self._measured_keys else "predicted" for key in self._keys(genes)]
        latencies = {name: predictor.predict(codes) for name, predictor in self.latency_predictors.items()}
        macs, params = self._macs.predict(codes), self._params.predict(codes)
        return [Candidate(arch, float(accuracy[i]), {name: float(v[i]) for name, v in latencies.items()},
                          int(round(macs[i] * 1e6)), int(round(params[i] * 1e6)), accuracy_source=sources[i])
                for i, arch in enumerate(self.space.decode(codes))]


def evolution_search(space: SearchSpace, accuracy_predictor: AccuracyPredictor,
                     latency_predictors: Mapping[str, LatencyPredictor], budgets: Mapping[str, float | Sequence[float]],
                     max_macs: float | Sequence[float] | None = None, max_params: float | Sequence[float] | None = None,
                     population: int = 100, generations: int = 500, parent_ratio: float = 0.25,
                     mutation_ratio: float = 0.5, mutate_prob: float = 0.1, seed: int = 0,
                     progress: bool = False, measured: MeasuredAccuracies | None = None) -> SearchResult:
    """The most accurate arch (by ``accuracy_predictor``) within latency ``budgets`` on each named device.

    ``budgets = {"note10": 25.0}`` is one search; lists (``{"note10": [15, 20, 25]}``) run one search per
    entry, batched together, and several devices in one run must all be met at once. ``max_macs`` and
    ``max_params`` (counts, not millions) add size limits. Devices in ``latency_predictors`` without a
    budget are only reported. Budgets below the smallest achievable value raise ``ValueError`` at once.
    ``measured`` accuracies replace the predictor's for the archs they hold and seed each run's population.
    Returns the best candidate per run, the per-device Pareto front of every arch evaluated, and the
    best-accuracy history.
    """
    search = EvolutionSearch(space, accuracy_predictor, latency_predictors, budgets, max_macs, max_params,
                             population, generations, parent_ratio, mutation_ratio, mutate_prob, seed, measured)
    return search.run(progress)
