"""The demo's figures: per runtime the predicted Pareto front with the exported subnets' measured points;
LUT-predicted vs measured latency; test accuracy vs measured latency of every exported file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_png
from .report import Row

MARKERS = {"onnx": "o", "tflite": "s", "onnx_int8": "^", "tflite_int8": "v"}


def plot_fronts(searches: dict[str, dict[str, Any]], rows: list[Row], path: Path) -> Path:
    """One panel per runtime: the search's predicted front, its budgets, and each chosen subnet measured
    (fp32 file's latency on that runtime, test accuracy on the shipped images; int8 beside it)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(searches), figsize=(5.6 * len(searches), 4.3), squeeze=False)
    for ax, (runtime, results) in zip(axes[0], searches.items()):
        device = next(iter(results["budgets_ms"]))
        front = results["pareto"].get(device, [])
        if front:
            ax.plot([c["latency_ms"][device] for c in front], [100 * c["accuracy"] for c in front], ".-", color="0.6",
                    lw=1, ms=3, label=f"predicted front ({len(front)} archs)")
        for budget in results["budgets_ms"][device]:
            ax.axvline(budget, color="C3", ls="--", lw=0.7)
        mine = [r for r in rows if r.runtime == runtime]
        ax.scatter([r.lut_ms for r in mine], [100 * r.predicted_acc for r in mine], marker="*", s=110, color="C1",
                   zorder=3, label="chosen: as searched (validation split)")
        measured = [r for r in mine if r.measured_ms is not None and r.test_acc is not None]
        ax.scatter([r.measured_ms for r in measured], [100 * r.test_acc for r in measured], marker="o", color="C0",
                   zorder=4, label="chosen: measured fp32 (test)")
        int8 = [r for r in mine if r.int8_ms is not None and r.int8_acc is not None]
        if int8:
            ax.scatter([r.int8_ms for r in int8], [100 * r.int8_acc for r in int8], marker="^", facecolors="none",
                       edgecolors="C2", zorder=4, label="chosen: measured int8 (test)")
        ax.set_xlabel(f"latency on {runtime}, 1 thread (ms)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{runtime} (dashed: budgets)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_png(fig, path)


def plot_latency(rows: list[Row], path: Path) -> Path:
    """Predicted (calibrated LUT) vs measured latency of every exported fp32 file, with y = x and ±10%."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    points: list[float] = []
    for runtime, marker in (("ort-cpu", "o"), ("tflite", "s")):
        pairs = [(r.lut_ms, r.measured_ms) for r in rows if r.runtime == runtime and r.measured_ms is not None]
        if pairs:
            x, y = zip(*pairs)
            ax.scatter(x, y, marker=marker, label=f"{runtime} (fp32)")
            points += [*x, *y]
    if points:
        lo, hi = min(points) * 0.8, max(points) * 1.2
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="measured = predicted")
        ax.plot([lo, hi], [1.1 * lo, 1.1 * hi], ":", color="0.5", lw=0.8, label="±10%")
        ax.plot([lo, hi], [0.9 * lo, 0.9 * hi], ":", color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("LUT prediction (ms)")
    ax.set_ylabel("measured end to end (ms)")
    ax.set_title("chosen subnets on this CPU (1 thread)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def plot_accuracy_latency(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    """Test accuracy vs measured latency of every file exported, each on its own runtime."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    for key, marker in MARKERS.items():
        points = [(f["measured_latency_ms"], 100 * f["test_acc"]) for r in reports.values()
                  if (f := r["formats"].get(key)) and f.get("measured_latency_ms") and f.get("test_acc") is not None]
        if points:
            x, y = zip(*points)
            ax.scatter(x, y, marker=marker, label=key.replace("_", " "))
    ax.set_xscale("log")
    ax.set_xlabel("measured latency, 1 thread (ms)")
    ax.set_ylabel("test accuracy, shipped images (%)")
    ax.set_title("every exported file on its runtime", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
