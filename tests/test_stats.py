"""Rank correlations against hand-computed values and their defining properties."""
from __future__ import annotations

import numpy as np
import pytest

from hwnas.stats import average_ranks, kendall_tau, spearman_rho


def test_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks(np.array([10.0, 20, 20, 5])), [2.0, 3.5, 3.5, 1.0])


def test_perfect_and_reversed_orders():
    a = np.arange(10.0)
    assert spearman_rho(a, a**3) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman_rho(a, np.ones(10)))


def test_known_values():
    a = np.array([1.0, 2, 3, 4, 5])
    b = np.array([2.0, 1, 4, 3, 5])
    # d = ranks differ by 1 on four items: rho = 1 - 6·4 / (5·24) = 0.8; tau = (8 - 2) / 10 = 0.6
    assert spearman_rho(a, b) == pytest.approx(0.8)
    assert kendall_tau(a, b) == pytest.approx(0.6)


def test_spearman_matches_definition():
    a = np.array([1.0, 2.0, 2.0, 5.0, 3.0])
    b = np.array([2.0, 1.0, 4.0, 9.0, 3.0])
    ra, rb = np.array([1, 2.5, 2.5, 5, 4]), np.array([2, 1, 4, 5, 3])
    assert spearman_rho(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
