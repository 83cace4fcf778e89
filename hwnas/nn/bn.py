"""BatchNorm recalibration: re-estimate running statistics for the subnet actually deployed.

A subnet's weights come from the supernet, but the supernet's running statistics were accumulated
over many different subnets; a few batches through the subnet itself fix them (OFA, BigNAS).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable[Any], n_batches: int) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them on up to ``n_batches`` batches.

    The statistics become the plain average over the batches (momentum ``None``); the model runs in
    training mode without gradients. Batches are tensors or ``(inputs, ...)`` tuples. Every module's
    train/eval flag and every BatchNorm's momentum are restored; an empty loader raises ``ValueError``
    before anything is reset. Returns the number of batches used.
    On a supernet, call it on an extracted subnet: only the active channels would be re-estimated.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches={n_batches} must be >= 1")
    batches = iter(loader)
    first = next(batches, None)
    if first is None:
        raise ValueError("recalibrate_bn: the loader yielded no batches")
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    modes = [(m, m.training) for m in model.modules()]
    device = next(model.parameters(), torch.empty(0)).device
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    used = 0
    try:
        for batch in itertools.islice(itertools.chain([first], batches), n_batches):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(inputs.to(device))
            used += 1
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        for module, training in modes:
            module.training = training
    return used
