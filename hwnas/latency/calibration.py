"""Calibration models: how per-op sums map to whole-network latency, fitted on measured subnets.

Every model is linear in per-arch features — the raw op sum ``S``, the number of ops ``n``, the tensor
elements at op borders ``io`` and the ops' parameters ``params`` — so it folds into the LUT as
``Σ ops (scale·mean + per_op + per_element·io + per_param·params) + offset`` and the native predictor
stays a plain sum. Why these terms: a standalone op pays fixed call and layout-reorder costs at its
borders, and runs with its weights hot in cache, which inside a whole network they are not (measured
with onnxruntime here: ~32 µs per MB of weights, 10–60% on the small late stages). Fitting minimises squared *relative* error,
because budgets are relative: 1 ms off matters at 5 ms, not at 80 ms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stats import kendall_tau

MODELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "scale": ("scale",),
    "scale+offset": ("scale", "offset"),
    "scale+per_op+offset": ("scale", "per_op", "offset"),
    "scale+per_param+offset": ("scale", "per_param", "offset"),
    "scale+per_op+per_param+offset": ("scale", "per_op", "per_param", "offset"),
    "scale+per_op+per_element+offset": ("scale", "per_op", "per_element", "offset"),
    "scale+per_op+per_element+per_param+offset": ("scale", "per_op", "per_element", "per_param", "offset"),
}


@dataclass(frozen=True)
class Features:
    """Per-arch quantities the calibration is linear in."""

    raw_sum: np.ndarray  # Σ op means (ms)
    n_ops: np.ndarray
    io: np.ndarray  # Σ op io elements
    params: np.ndarray  # Σ op parameters

    def column(self, term: str) -> np.ndarray:
        return {"scale": self.raw_sum, "per_op": self.n_ops, "per_element": self.io, "per_param": self.params,
                "offset": np.ones_like(self.raw_sum)}[term]

    def subset(self, index: np.ndarray) -> Features:
        return Features(self.raw_sum[index], self.n_ops[index], self.io[index], self.params[index])


def identity() -> dict[str, float]:
    return {"scale": 1.0, "offset": 0.0, "per_op": 0.0, "per_element": 0.0, "per_param": 0.0}


def apply(params: dict[str, float], features: Features) -> np.ndarray:
    return (params["scale"] * features.raw_sum + params["per_op"] * features.n_ops
            + params["per_element"] * features.io + params["per_param"] * features.params + params["offset"])


def fit(model: str, features: Features, measured: np.ndarray) -> dict[str, float] | None:
    """Least squares on relative error; None when the fit is unusable (scale must stay positive)."""
    terms = MODELS[model]
    params = identity()
    if not terms:
        return params
    design = np.stack([features.column(t) for t in terms], axis=1) / measured[:, None]
    norms = np.linalg.norm(design, axis=0)  # columns differ by orders of magnitude (ms vs elements)
    solution, *_ = np.linalg.lstsq(design / norms, np.ones_like(measured), rcond=None)
    solution = solution / norms
    params.update({t: float(v) for t, v in zip(terms, solution)})
    if not params["scale"] > 0 or not all(math.isfinite(v) for v in params.values()):
        return None
    return params


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """RMSPE (%), share within ±5% / ±10%, worst error (%), Kendall tau, mean signed error (%)."""
    error = (predicted - measured) / measured
    return {
        "n": int(len(measured)),
        "rmspe_pct": float(np.sqrt(np.mean(error**2)) * 100),
        "within_5pct": float(np.mean(np.abs(error) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(error) <= 0.10)),
        "max_abs_pct": float(np.max(np.abs(error)) * 100),
        "mean_pct": float(np.mean(error) * 100),
        "kendall_tau": kendall_tau(predicted, measured),
    }


def cross_validated_rmspe(model: str, features: Features, measured: np.ndarray, folds: int = 5) -> float:
    """RMSPE of ``model`` on held-out folds of the fitting set (chooses the model without the test half)."""
    order = np.arange(len(measured))
    errors = []
    for fold in range(min(folds, len(measured))):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        params = fit(model, features.subset(train), measured[train])
        if params is None:
            return math.inf
        errors.append((apply(params, features.subset(test)) - measured[test]) / measured[test])
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)) * 100)


def choose(features: Features, measured: np.ndarray, min_gain_pct: float = 0.1) -> tuple[str, dict[str, float], dict]:
    """The model with the lowest cross-validated RMSPE; a richer one must beat a simpler by ``min_gain_pct``."""
    scores = {name: cross_validated_rmspe(name, features, measured) for name in MODELS}
    best = "none"
    for name in MODELS:  # ordered simple → rich
        if scores[name] < scores[best] - min_gain_pct:
            best = name
    params = fit(best, features, measured)
    assert params is not None
    return best, params, scores
