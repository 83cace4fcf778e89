"""The search figure: per device, the accuracy–latency Pareto front, the budgets and the archs found."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_png


def plot_pareto(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a PNG with one panel per device from a ``results.json`` dict (fronts may be empty)."""
    plt = pyplot()
    devices = list(results["luts"])
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 4.2), squeeze=False)
    for ax, device in zip(axes[0], devices):
        front = results["pareto"].get(device, [])
        if front:
            ax.plot([c["latency_ms"][device] for c in front], [100 * c["accuracy"] for c in front], ".-", color="0.55",
                    lw=1, ms=3, label=f"Pareto front ({len(front)} archs)")
        for budget in results["budgets_ms"].get(device, []):
            ax.axvline(budget, color="C3", ls="--", lw=0.8)
        found = results["found"]
        ax.scatter([c["latency_ms"][device] for c in found], [100 * c["accuracy"] for c in found], marker="*", s=120,
                   color="C1", zorder=3, label="found (predicted accuracy)")
        if found and "holdout_accuracy" in found[0]:
            ax.scatter([c["latency_ms"][device] for c in found], [100 * c["holdout_accuracy"] for c in found],
                       marker="x", color="C0", zorder=3, label="found (measured on holdout)")
        ax.set_xlabel(f"latency on {device} (ms)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{results['space']} · {results['strategy']} search (dashed: budgets)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
