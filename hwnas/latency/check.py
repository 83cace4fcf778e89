"""``hwnas lut check``: does this machine run now as fast as when a LUT was profiled, and by how much not?

A LUT is a snapshot of one machine at one time; a shared VM moves between speed states within seconds and its
fastest state itself can change between days (the tiny-mbv3 table profiled here on 2026-12-01 priced every op
13.7% lower than a profile of 2026-12-07 on the same VM). Re-profiling takes minutes; this takes seconds: a few
of the LUT's own ops, from its smallest to its largest, are rebuilt and timed with the profiler's protocol (the
speed reference between windows, each op's fastest window kept), and each is compared with its entry.
The median ratio says how much slower (above 1) or faster the machine runs the LUT's ops now; the reference's
readings say how much of the time it now spends in slower states.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..space import OpSignature, get_space
from . import speed_reference as ref
from .profiler import interleaved_order
from .protocol import Protocol, measure
from .table import LatencyTable
from .targets import get_target, target_names
from .targets.base import cpu_model

DEFAULT_OPS = 6
DEFAULT_PASSES = 5
SAME_SPEED = 0.03  # |ratio - 1| within this: "runs as fast as when profiled" (two profiles here agree to ~1%)


def checked_ops(table: LatencyTable, signatures: list[OpSignature], reference: OpSignature,
                count: int) -> list[OpSignature]:
    """The reference and ``count - 1`` more of the table's inverted-residual ops at evenly spaced quantiles of
    their latency (smallest to largest: small ops are dominated by per-call costs, large ones by memory)."""
    blocks = sorted((s for s in signatures if s.kind == "expanded_conv" and s.key in table and s.key != reference.key),
                    key=lambda s: (table.mean(s.key), s.key))
    if count < 1:
        raise ValueError(f"ops={count}: check at least one op")
    picks = [blocks[int(round(q))] for q in np.linspace(0, len(blocks) - 1, count - 1)] if count > 1 and blocks else []
    return [reference, *dict.fromkeys(picks)]


def check_lut(lut_path: str | Path, ops: int = DEFAULT_OPS, passes: int = DEFAULT_PASSES,
              protocol: Protocol | None = None) -> dict[str, Any]:
    """Re-time ``ops`` of the LUT's ops on the runtime and threads it was profiled with; ratios now / LUT."""
    if passes < 1:
        raise ValueError(f"passes={passes} must be >= 1")
    started = time.time()
    table = LatencyTable.load(lut_path)
    meta = table.metadata
    target_name = meta.get("target")
    if target_name not in target_names():
        raise ValueError(f"{lut_path}: profiled on {meta.get('device', 'another device')} with "
                         f"{(meta.get('runtime') or {}).get('name', 'an unknown runtime')} (target {target_name!r}); "
                         f"it can only be checked there (targets here: {target_names()})")
    if not meta.get("space"):
        raise ValueError(f"{lut_path}: the LUT does not name its space; it cannot be checked")
    space = get_space(meta["space"])
    resolutions = meta.get("resolutions") or space.resolutions
    signatures = space.all_signatures(resolutions)
    recorded = meta.get("speed_reference") or {}
    reference, reference_seed = ref.reference_signature(signatures)
    recorded_reference = next((s for s in signatures if s.key == recorded.get("key")), None)
    if recorded_reference is not None:  # the op the profile timed, should the rule that picks it ever change
        reference, reference_seed = recorded_reference, signatures.index(recorded_reference)
    chosen = checked_ops(table, signatures, reference, ops)
    missing = [s.key for s in chosen if s.key not in table]
    if missing:
        raise KeyError(f"{lut_path}: lacks the entries {missing} this check times")
    target = get_target(target_name, int((meta.get("runtime") or {}).get("threads") or 1),
                        precision=table.precision)  # the reference is timed as the LUT timed it
    protocol = protocol or Protocol()
    runners = [target.runner(target.build_op(s, seed=signatures.index(s))) for s in chosen]
    windows: list[list[dict[str, Any]]] = [[] for _ in chosen]
    try:
        with target.runner(target.build_op(reference, seed=reference_seed)) as reference_runner:
            timer = ref.WindowTimer(reference_runner)
            for _, i in interleaved_order(len(chosen), passes, seed=0):
                windows[i].append(timer.time(lambda: measure(runners[i], protocol).stats()))
    finally:
        for runner in runners:
            runner.close()
    readings = ref.readings_of([w for op in windows for w in op])
    base_now = ref.base_speed(readings)
    rows = []
    for sig, op_windows in zip(chosen, windows):
        now = ref.combine(op_windows, base_now)["mean"]
        rows.append({"key": sig.key, "lut_ms": table.mean(sig.key), "now_ms": now, "ratio": now / table.mean(sig.key)})
    ratios = np.array([r["ratio"] for r in rows])
    report: dict[str, Any] = {
        "lut": str(lut_path), "space": space.name, "target": target_name, "ops": rows,
        "ratio": float(np.median(ratios)), "ratio_range": [float(ratios.min()), float(ratios.max())],
        "reference": {"key": reference.key, "fastest_now_ms": base_now, "median_now_ms": float(np.median(readings)),
                      "profiled_ms": recorded.get("base_ms")},
        "profiled_on": meta.get("device"), "this_cpu": cpu_model(), "profiled_at": meta.get("created_at"),
        "seconds": round(time.time() - started, 1),
    }
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict[str, Any]) -> str:
    """One sentence a user can act on."""
    ratio = report["ratio"]
    low, high = report["ratio_range"]
    spread = f"{len(report['ops'])} ops ×{low:.3f}–×{high:.3f}"
    if abs(ratio - 1) <= SAME_SPEED:
        text = f"this machine runs the LUT's ops as fast as when it was profiled (×{ratio:.3f}; {spread})"
    else:
        direction = "slower" if ratio > 1 else "faster"
        text = (f"this machine runs the LUT's ops {abs(ratio - 1):.1%} {direction} than when it was profiled "
                f"(×{ratio:.3f}; {spread}): scale budgets by ×{ratio:.3f} or re-profile")
    contention = report["reference"]["median_now_ms"] / report["reference"]["fastest_now_ms"]
    if contention > 1 + 2 * SAME_SPEED:
        text += (f"; right now it is often in a slower state (the reference's median reading is ×{contention:.2f} "
                 "its fastest): measurements taken now need several windows")
    if report["profiled_on"] and report["profiled_on"] != report["this_cpu"]:
        text += f"; note: the LUT was profiled on {report['profiled_on']}, this is {report['this_cpu']}"
    return text
