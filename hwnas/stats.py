"""Rank correlations for predictor reports: how well predicted values order the measured ones.

Kendall's tau-b (pairs, ties accounted) and Spearman's rho (Pearson on average ranks), in numpy
without SciPy. Both are O(n²) or better and meant for report-sized samples (thousands).
"""
from __future__ import annotations

import math

import numpy as np


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b between two samples (O(n²) memory and time; NaN when either sample is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), 1)
    concordant = float((da * db)[upper].sum())
    ties_a, ties_b = float((da[upper] == 0).sum()), float((db[upper] == 0).sum())
    pairs = len(upper[0])
    denominator = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    return concordant / denominator if denominator else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their positions."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy when sorted
    return (starts + (counts + 1) / 2.0)[inverse.reshape(-1)]


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (NaN when either sample is constant)."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denominator if denominator else float("nan")
