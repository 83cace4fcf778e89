"""``hwnas demo``: the whole job on shipped data, offline, in minutes on a laptop CPU.

This CPU's onnxruntime and TFLite LUTs (cached, or profiled) → the zoo's pretrained supernet and its accuracy
predictor (``--train``: a supernet trained now on the shipped subset, quick schedule) → one evolutionary search
per runtime under budgets spread over its LUT's range → every chosen subnet exported to ONNX and TFLite, fp32
and int8, verified against PyTorch, timed on both runtimes and counted on the shipped test images →
``report.md`` with the results table, the checks and the plots. Every stage reuses what a previous run finished.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..space import get_space
from .plots import plot_accuracy_latency, plot_fronts, plot_latency
from .report import checks, console_table, result_rows, write_report
from .stages import (RUNTIMES, SMOKE, SPACE, DemoSizes, budgets_for, export_stage, int8_lut_stage, latency_range,
                     profile_stage, profile_summary, search_stage, supernet_stage)

__all__ = ["SMOKE", "DemoSizes", "run_demo"]


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def run_demo(out: Path, sizes: DemoSizes = DemoSizes(), supernet: str | None = None, train: bool = False) -> int:
    """Every stage in order; prints the results table and writes ``out/report.md``.
    Exit status 1 when an fp32 file failed its check (a bug); unmet accuracy or latency bars are reported."""
    from ..latency.targets.base import cpu_model

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    space = get_space(SPACE)
    print(f"[space] {space.name}: {space.num_blocks} block slots, kernels {space.ks}, expand {space.expand}, "
          f"depth {space.depth}, resolutions {space.resolutions}; {len(space.all_signatures())} distinct operators")
    luts, int8_luts = {}, {}
    seconds: dict[str, float] = {}
    with timed(seconds, "latency tables"):
        for runtime in RUNTIMES:
            lut = profile_stage(out, runtime, measure=sizes.profile, any_cpu=not sizes.profile)
            if lut is None:
                raise RuntimeError(f"no {runtime} LUT for this CPU and profiling is off: run hwnas demo without --smoke")
            luts[runtime] = lut
            int8_lut = int8_lut_stage(runtime, any_cpu=not sizes.profile) if sizes.int8 else None
            if int8_lut is not None:
                int8_luts[runtime] = int8_lut
    with timed(seconds, "supernet"):
        chosen = supernet_stage(out, supernet, train, sizes)
    with timed(seconds, "search"):
        searches = {runtime: search_stage(out, runtime, chosen, luts,
                                          budgets_for(luts[runtime], sizes.budget_fractions), sizes)
                    for runtime in RUNTIMES}
    reports = export_stage(out, chosen, searches, luts, sizes, seconds, int8_luts)
    rows = result_rows(searches, reports)
    plot_fronts(searches, rows, out / "pareto.png")
    plot_latency(rows, out / "latency.png")
    plot_accuracy_latency(reports, out / "accuracy_latency.png")
    if chosen.training is not None:
        shutil.copyfile(Path(chosen.training["supernet"]).parent / "training.png", out / "training.png")
    verdicts = checks(rows, {runtime: latency_range(lut)[0] for runtime, lut in luts.items()})
    formats = next(iter(reports.values()))["formats"]
    test_images = formats["onnx"]["test_images"]
    int8_images = f"{formats['onnx_int8']['test_images']:,}" if "onnx_int8" in formats else "none (not exported)"
    profiles = [profile_summary(p) for p in [*luts.values(), *int8_luts.values()]]
    report = write_report(out, chosen, searches, rows, verdicts, profiles, time.time() - start, f"{cpu_model()}",
                          test_images, int8_images, seconds)
    print(console_table(rows))
    for what, held, figures in verdicts:
        print(f"[check] {'held' if held else 'NOT HELD'}: {what} — {figures}")
    print(f"demo finished in {(time.time() - start) / 60:.1f} min; report {report}")
    return 0 if all(row.fp32_passed for row in rows) else 1
