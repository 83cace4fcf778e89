"""OFA's accuracy predictor checkpoint as an hwnas :class:`AccuracyPredictor`, exactly.

Both are the same MLP: ``n`` layers of Linear + ReLU, a bias-free Linear to one output, plus a constant base
accuracy. The features are the same one-hots in another order. OFA's ``MobileNetArchEncoder`` puts the
resolution first (one column per size of its ``image_size_list``), then kernel per block slot, then expand
per block slot. hwnas puts kernel, expand, resolution. Permuting the first layer's columns is the whole
conversion. OFA columns for a resolution the hwnas space lacks are always zero for the space's archs, so
they are dropped without changing any prediction. A space resolution OFA's encoder lacks has no column,
and it is refused: the predictor never saw it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..nn.ofa_checkpoint import read_ofa_state_dict
from ..space.base import SearchSpace
from .accuracy_predictor import AccuracyPredictor
from .encoding import feature_count

OFA_IMAGE_SIZES = tuple(range(128, 225, 4))  # the encoder of OFA's released MobileNetV3 predictor


def import_ofa_predictor(path: str | os.PathLike[str], space: SearchSpace,
                         image_sizes: Sequence[int] | None = None) -> AccuracyPredictor:
    """Read OFA's ``AccuracyPredictor`` state dict at ``path`` (``layers.*``, ``base_acc``) for ``space``.

    ``image_sizes`` is its encoder's ``image_size_list``. None: inferred when the width allows only OFA's
    released one (128–224 in steps of 4)."""
    path = Path(path)
    state = read_ofa_state_dict(path)
    hidden_layers = sorted(int(m.group(1)) for name in state if (m := re.fullmatch(r"layers\.(\d+)\.0\.weight", name)))
    if not hidden_layers or "base_acc" not in state or hidden_layers != list(range(len(hidden_layers))):
        raise ValueError(f"{path}: not an OFA accuracy predictor (expected layers.<i>.0.weight and base_acc, "
                         f"found {sorted(state)[:4]}...)")
    n_layers = len(hidden_layers)
    expected = {f"layers.{i}.0.{p}" for i in range(n_layers) for p in ("weight", "bias")}
    expected |= {f"layers.{n_layers}.weight", "base_acc"}
    unknown, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if unknown or missing:
        raise ValueError(f"{path}: OFA accuracy predictor tensors do not fit the MLP: "
                         + (f"unexpected {unknown[0]!r}" if unknown else f"missing {missing[0]!r}"))
    first = state["layers.0.0.weight"]
    hidden, n_dim = int(first.shape[0]), int(first.shape[1])
    if list(space.ks) != sorted(space.ks) or list(space.expand) != sorted(space.expand):
        raise ValueError(f"space {space.name!r}: kernel/expand choices must be ascending, as OFA's encoder lists them")
    blocks = space.num_blocks * (len(space.ks) + len(space.expand))
    sizes = list(image_sizes) if image_sizes is not None else None
    if sizes is None:
        if n_dim - blocks != len(OFA_IMAGE_SIZES):
            raise ValueError(f"{path}: its encoder has {n_dim - blocks} resolution columns, not OFA's "
                             f"{len(OFA_IMAGE_SIZES)} (128-224); give image_sizes= (its image_size_list)")
        sizes = list(OFA_IMAGE_SIZES)
    if n_dim != len(sizes) + blocks:
        raise ValueError(f"{path}: first layer takes {n_dim} features; space {space.name!r} with {len(sizes)} image "
                         f"sizes needs {len(sizes) + blocks} ({space.num_blocks} block slots)")
    unseen = [r for r in space.resolutions if r not in sizes]
    if unseen:
        raise ValueError(f"{path}: the predictor was not trained at resolution(s) {unseen} of space {space.name!r} "
                         f"(its image sizes: {sizes})")
    R = len(sizes)
    columns = np.concatenate([R + np.arange(blocks), [sizes.index(r) for r in space.resolutions]])
    assert len(columns) == feature_count(space)
    predictor = AccuracyPredictor(space, hidden=hidden, layers=n_layers)
    try:
        _copy_weights(predictor, state, first[:, torch.from_numpy(columns)], n_layers)
    except RuntimeError as error:  # a hidden layer of another width than the first
        raise ValueError(f"{path}: OFA accuracy predictor layers do not chain ({str(error).splitlines()[0]})") from None
    predictor.invalidate()
    predictor.report = {"imported_from": {"format": "ofa", "file": path.name, "image_sizes": sizes}}
    return predictor.eval()


def _copy_weights(predictor: AccuracyPredictor, state: dict[str, torch.Tensor], first: torch.Tensor,
                  n_layers: int) -> None:
    with torch.no_grad():
        predictor.body[0].weight.copy_(first)
        predictor.body[0].bias.copy_(state["layers.0.0.bias"])
        for i in range(1, n_layers):
            predictor.body[i].weight.copy_(state[f"layers.{i}.0.weight"])
            predictor.body[i].bias.copy_(state[f"layers.{i}.0.bias"])
        predictor.head.weight.copy_(state[f"layers.{n_layers}.weight"])
        predictor.base_accuracy.copy_(state["base_acc"].reshape(()))
