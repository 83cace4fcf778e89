"""The training figure: loss per step across the phases, and subnet accuracy after each phase."""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import pyplot, save_png


def read_log(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of the trainer's ``log.csv`` (complete rows only)."""
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("seconds")]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_training(log_rows: Sequence[Mapping[str, str]], phase_eval: Sequence[Mapping[str, Any]],
                  path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a PNG: training loss (raw and smoothed, phases shaded) and, per phase end, the holdout
    accuracy of the reference subnets (rows ``{"phase": name, "holdout_acc": {subnet: accuracy}}``)."""
    plt = pyplot()
    steps = np.array([int(r["step"]) for r in log_rows])
    losses = np.array([float(r["loss"]) for r in log_rows])
    phases = [r["phase"] for r in log_rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    if len(steps):
        ax_loss.plot(steps, losses, color="0.8", lw=0.6, label="loss per step")
        ax_loss.plot(steps, _smooth(losses, max(1, len(losses) // 60)), color="C0", lw=1.6, label="smoothed")
        bounds = [0] + [i for i in range(1, len(phases)) if phases[i] != phases[i - 1]] + [len(phases)]
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            if k % 2:
                ax_loss.axvspan(steps[a] - 0.5, steps[b - 1] + 0.5, color="0.95", lw=0)
            ax_loss.text((steps[a] + steps[b - 1]) / 2, 1.01, phases[a], transform=ax_loss.get_xaxis_transform(),
                         ha="left", va="bottom", fontsize=7, rotation=30)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (CE + KD)")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(alpha=0.3)
    names = [row["phase"] for row in phase_eval]
    subnets = sorted({s for row in phase_eval for s in row["holdout_acc"]})
    for k, subnet in enumerate(subnets):
        xs = [i for i, row in enumerate(phase_eval) if subnet in row["holdout_acc"]]
        ax_acc.plot(xs, [100 * phase_eval[i]["holdout_acc"][subnet] for i in xs], "o-", color=f"C{k + 1}", label=subnet)
    ax_acc.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax_acc.set_ylabel("holdout top-1 after the phase (%)")
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(alpha=0.3)
    if subnets:
        ax_acc.legend(fontsize=8)
    fig.suptitle(title or "progressive shrinking", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
