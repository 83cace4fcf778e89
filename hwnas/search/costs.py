"""Per-arch costs as native sums over ops: MACs and parameters through the same predictor as latency.

A latency predictor sums per-op values from a table; so does counting MACs or parameters. Building a
table whose "latency" is each op's MACs (or parameters) gives the search one vectorised, native call
per population for every constraint. :func:`smallest` finds the exact minimum of any such sum (and
the arch reaching it) from the compiled dense arrays, which is how infeasible budgets are caught
before a search starts.
"""
from __future__ import annotations

import numpy as np

from ..latency.predictor import LatencyPredictor
from ..latency.table import LatencyTable, make_metadata
from ..space.base import SearchSpace

COSTS = ("macs", "params")


_CACHE: dict[tuple[str, str], LatencyPredictor] = {}


def op_cost_predictor(space: SearchSpace, cost: str) -> LatencyPredictor:
    """A predictor whose value for an arch is its total MACs or parameters, in millions (exact).

    Built once per space and cost in a process (compiling a space's op list takes ~0.1 s).
    """
    if cost not in COSTS:
        raise ValueError(f"cost={cost!r}; choose one of {list(COSTS)}")
    key = (space.content_hash, cost)
    if key not in _CACHE:
        _CACHE[key] = _build(space, cost)
    return _CACHE[key]


def _build(space: SearchSpace, cost: str) -> LatencyPredictor:
    signatures = space.all_signatures()
    keys = [sig.key for sig in signatures]
    values = np.array([getattr(sig, cost) / 1e6 for sig in signatures], dtype=np.float64)
    stats = np.full((len(keys), 6), np.nan)
    stats[:, 0] = values
    stats[:, 1] = values
    table = LatencyTable(metadata=make_metadata(device=f"{cost} counter", space_hash=space.content_hash))
    table.set_many(keys, stats, np.ones(len(keys), dtype=np.int64))
    return LatencyPredictor(space, table)


def smallest(predictor: LatencyPredictor, resolution_codes: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The minimum value over every arch of the predictor's space (at the allowed resolution codes,
    default every served one) and the codes ``[S]`` of an arch reaching it."""
    fixed, blocks = predictor.dense()
    return minimize_additive(predictor.space, fixed, blocks, resolution_codes)


def minimize_additive(space: SearchSpace, fixed: np.ndarray, blocks: np.ndarray,
                      resolution_codes: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Exact minimum of ``fixed[r] + Σ active slots blocks[r, b, k, e]`` (a predictor's dense form, or a
    weighted sum of several) and the codes reaching it: per resolution, per stage the cheapest depth of
    the per-slot cheapest (kernel, expand). NaN marks resolutions that cannot be used.
    """
    B, G = space.num_blocks, space.num_stages
    max_depth, K, E = B // G, blocks.shape[2], blocks.shape[3]
    candidates = np.flatnonzero(np.isfinite(fixed)) if resolution_codes is None else np.asarray(resolution_codes)
    best_value, best_codes = np.inf, None
    for r in candidates:
        if not np.isfinite(fixed[r]) or not np.all(np.isfinite(blocks[r])):
            continue
        flat = blocks[r].reshape(B, K * E)
        choice = flat.argmin(axis=1)  # per slot
        slot_cost = flat[np.arange(B), choice].reshape(G, max_depth)
        depth_cost = np.stack([slot_cost[:, :d].sum(axis=1) for d in space.depth], axis=1)  # [G, D]
        depth_choice = depth_cost.argmin(axis=1)
        value = float(fixed[r] + depth_cost[np.arange(G), depth_choice].sum())
        if value < best_value:
            codes = np.zeros(space.num_codes, dtype=np.int32)
            codes[:B], codes[B:2 * B] = choice // E, choice % E
            codes[2 * B:2 * B + G], codes[-1] = depth_choice, r
            best_value, best_codes = value, codes
    if best_codes is None:
        raise ValueError(f"{space.name}: none of the resolution codes {list(candidates)} can be used")
    return best_value, best_codes
