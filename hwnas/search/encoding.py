"""OFA's one-hot architecture features, computed from int32 codes for a whole population at once.

Per block slot a one-hot of its kernel and one of its expand ratio — all zeros when the slot is
beyond its stage's depth, so depth is encoded by which slots are lit — then a one-hot of the
resolution: ``B·K + B·E + R`` features (145 for the ImageNet spaces, 123 for ``tiny-mbv3``).
"""
from __future__ import annotations

import numpy as np

from ..space.base import SearchSpace


def feature_count(space: SearchSpace) -> int:
    return space.num_blocks * (len(space.ks) + len(space.expand)) + len(space.resolutions)


def active_mask(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """bool ``[N, B]``: which block slots run (slot ``j`` of a stage runs when ``j < depth``)."""
    B, G = space.num_blocks, space.num_stages
    depth_values = np.asarray(space.depth)[codes[:, 2 * B:2 * B + G]]  # [N, G]
    max_depth = B // G
    position = np.arange(B) % max_depth
    stage = np.arange(B) // max_depth
    return position[None, :] < depth_values[:, stage]


def one_hot_features(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """float32 ``[N, feature_count(space)]`` for int32 codes ``[N, S]`` (validated)."""
    codes = space.check_codes(np.atleast_2d(codes))
    n, B = len(codes), space.num_blocks
    K, E, R = len(space.ks), len(space.expand), len(space.resolutions)
    active = active_mask(space, codes).astype(np.float32)  # [N, B]
    features = np.zeros((n, B * K + B * E + R), dtype=np.float32)
    rows = np.arange(n)[:, None]
    slots = np.arange(B)[None, :]
    features[rows, slots * K + codes[:, :B]] = active
    features[rows, B * K + slots * E + codes[:, B:2 * B]] = active
    features[np.arange(n), B * (K + E) + codes[:, -1]] = 1.0
    return features
