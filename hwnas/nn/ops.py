"""Activations and weight initialisation shared by the static and the elastic layers."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ActFn = Callable[[torch.Tensor], torch.Tensor]

# MobileNetV3's h-swish is x · relu6(x + 3) / 6 (F.hardswish); its h-sigmoid is relu6(x + 3) / 6.
_ACTIVATIONS: dict[str, ActFn] = {"relu": F.relu, "h_swish": F.hardswish}


def get_act(name: str) -> ActFn:
    """The activation function an ``OpSignature.act`` names (``relu`` or ``h_swish``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"act={name!r} is not supported; allowed: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def init_conv_(weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """OFA's ``he_fout`` initialisation: N(0, 2 / (k·k·out)), bias zero."""
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    if bias is not None:
        nn.init.zeros_(bias)
