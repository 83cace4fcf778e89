"""How fast this machine runs *now* compared with when a LUT was validated: re-time a few of its own subnets.

A LUT is a snapshot. A shared CPU, a phone's thermal state or a governor change moves every latency at once:
on this project's 2-core VM the same 100 validation subnets ran a median 13.6% (onnxruntime) and 10.9%
(LiteRT) faster 34 minutes after they were validated (small ones up to 25%), while a calibration fitted at
either time held 96–100% of the held-out subnets within 10%. So wherever hwnas measures what it predicted
(``hwnas export``, ``hwnas search --measure``), it also re-times "anchor" subnets: the validation subnets
nearest in latency to what is measured, rebuilt exactly as validation built them and timed in the same
interleaved rounds. The median ratio anchor-now / anchor-then is the machine's drift since validation; it says
nothing about the arch itself, and the prediction scaled by it is what the LUT would say if it had been
validated now.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import read_json
from ..space import Arch, SearchSpace
from .validate import VALIDATION_JSON

DEFAULT_ANCHORS = 4


def nearest_subnets(subnets: list[dict[str, Any]], predicted_ms: float, k: int) -> list[int]:
    """Indices of the ``k`` validation subnets whose measured latency is nearest to ``predicted_ms`` (log scale):
    drift differs with size (small nets are dominated by per-call costs), so anchors of the arch's size."""
    if k < 1 or not subnets:
        return []
    if not predicted_ms > 0:
        raise ValueError(f"predicted_ms={predicted_ms!r}: anchors need a positive predicted latency")
    measured = np.array([float(s["measured_ms"]) for s in subnets])
    distance = np.abs(np.log(measured) - np.log(predicted_ms))
    return [int(i) for i in np.argsort(distance, kind="stable")[:k]]


def validation_subnets(space: SearchSpace, lut_path: str | Path) -> list[dict[str, Any]]:
    """The measured subnets of the validation report beside ``lut_path``; none when there is no report or it
    belongs to another space (read once per LUT, then handed to ``validation_anchors`` for every arch)."""
    report_path = Path(lut_path).parent / VALIDATION_JSON
    if not report_path.is_file():
        return []
    report = read_json(report_path)
    if report.get("space_hash") != space.content_hash:
        return []
    return report.get("subnets") or []


def validation_anchors(space: SearchSpace, subnets: list[dict[str, Any]], predicted_ms: float,
                       k: int = DEFAULT_ANCHORS) -> list[tuple[int, Arch, float]]:
    """(index in the report, arch, latency measured at validation) of the ``k`` anchors among ``subnets``."""
    return [(i, space.validate(Arch.from_dict(subnets[i]["arch"])), float(subnets[i]["measured_ms"]))
            for i in nearest_subnets(subnets, predicted_ms, k)]


def speed_factor(now_ms: list[float], then_ms: list[float]) -> dict[str, Any] | None:
    """Median of anchor now / then (below 1: the machine runs faster now) with the per-anchor ratios; None
    without anchors. The median: one anchor caught by a noisy moment must not move the figure."""
    if not now_ms:
        return None
    ratios = [now / then for now, then in zip(now_ms, then_ms)]
    return {"factor": float(np.median(ratios)), "anchors": len(ratios), "ratios": [round(r, 4) for r in ratios]}
