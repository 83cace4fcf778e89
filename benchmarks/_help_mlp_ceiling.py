"""A third ceiling for HELP's GPU latencies (docs/adapt.md): an MLP on the arch, trained on 4,000 of a device's
own subnets, scored on the other 1,000. Not run by ``make bench`` (an experiment, torch, ~1 min per device).

If a flexible model fitted on 4,000 subnets cannot rank the rest better than the LUT's additive model, the
remaining disorder is not a function of the arch, and no adaptation from 10 runs can remove it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _help_data as help_data  # noqa: E402

from hwnas.stats import spearman_rho  # noqa: E402


def features(arch: dict) -> list[float]:
    """Per block slot: kernel and expand one-hot where active, times (r - 176) / 48; and a resolution one-hot."""
    r = (arch["r"] - 176) / 48
    out: list[float] = []
    for stage in range(5):
        for position in range(4):
            slot, active = stage * 4 + position, position < arch["d"][stage]
            hot = [float(active and arch["ks"][slot] == k) for k in (3, 5, 7)] + \
                  [float(active and arch["e"][slot] == e) for e in (3, 4, 6)]
            out += hot + [v * r for v in hot]
    return out + [float(arch["r"] == v) for v in range(128, 225, 4)]


def main() -> int:
    x = torch.tensor([features(a) for a in help_data.archs()])
    for device in help_data.DEVICES:
        for batch in (1, 32):
            y = torch.tensor(help_data.latencies(device, batch), dtype=torch.float32)
            torch.manual_seed(0)
            order = torch.randperm(len(y))
            train, test = order[:4000], order[4000:]
            model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                                        torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
            optimiser = torch.optim.Adam(model.parameters(), 1e-3, weight_decay=1e-5)
            mean = y[train].mean()
            for _ in range(1500):
                optimiser.zero_grad()
                predicted = (1 + model(x[train]).squeeze(1)) * mean
                loss = ((predicted / y[train] - 1) ** 2).mean()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                predicted = ((1 + model(x[test]).squeeze(1)) * mean).numpy()
            error = predicted / y[test].numpy() - 1
            print(f"{device} b{batch}: held-out ρ {spearman_rho(predicted, y[test].numpy()):.3f}, "
                  f"{np.mean(np.abs(error) <= 0.10):.0%} within ±10%, train RMSPE {100 * loss.item() ** 0.5:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
