"""``hwnas export``: from a supernet and an arch (or a search result) to verified model files and a bundle.

Steps: extract the subnet and recalibrate its BatchNorm; write ONNX and/or TFLite fp32 (hwnas's writers,
metadata inside); optionally int8 versions calibrated on training images; verify every file against the
PyTorch subnet on real test images (numerics, top-1 agreement, accuracy) and measure its latency here next
to the LUT's prediction, with a few of the LUT's validation subnets re-timed in the same rounds to tell the
machine's drift since validation from the prediction's error (``hwnas.latency.drift``); write ``report.json`` and the
deploy bundle (``run.py`` & co.) into ``out``.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import read_json, write_bytes_atomic, write_json_atomic
from ..latency.predictor import LatencyPredictor
from ..latency.table import LatencyTable, device_name
from .bundle import write_bundle
from .files import FILE_NAMES, FORMATS, RUNTIMES, build_fp32, model_metadata
from ..formats.quantize import TFLITE_MODES, quantize_onnx, quantize_tflite
from .subnet import PreparedSubnet, prepare_subnet
from .timing import measure_reports, timing_spec
from .verify import DEFAULT_ANCHORS, compare, reference

REPO_PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"


@dataclass(frozen=True)
class ExportOptions:
    supernet: str | None
    out: str
    arch: str | dict[str, Any] | None = None     # a JSON file or a dict
    from_search: str | None = None               # a search run folder (its results.json) ...
    budget: float | None = None                  # ... and which of its budgets
    formats: Sequence[str] = FORMATS
    int8: bool = False
    calib_images: int = 256
    tflite_int8: str = "dynamic"                 # "dynamic" (CPUs) or "static" (full integer, for NPUs)
    luts: Sequence[str] = ()                     # LUTs to price (and measure) with; default: the search's + shipped
    data_dir: str | None = None
    verify: bool = True
    numeric_images: int = 100                    # images for max_abs_diff
    agreement_images: int = 500                  # images for top-1 agreement (a seeded uniform sample of the test set)
    test_images: int | None = None               # images for test accuracy (None: the whole test set)
    int8_test_images: int | None = None          # of those, how many the int8 files are counted on (None: all)
    measure: bool = True                         # False: time later with hwnas.export.timing.measure_exports
    threads: int | None = None                   # threads verification runs the files with (None: every core)
    drift_anchors: int = DEFAULT_ANCHORS         # validation subnets re-timed beside the files (0: no drift check)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def lut_id(path: str | Path) -> str:
    """``<device folder or file stem>@<first 12 hex of the file's sha256>``: names the exact table used."""
    return f"{device_name(path)}@{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]}"


def resolve_arch(options: ExportOptions) -> tuple[str, Any, list[str]]:
    """(supernet path, arch source, LUT paths) from ``--arch`` or ``--from-search/--budget``."""
    if (options.arch is None) == (options.from_search is None):
        raise ValueError("give exactly one of arch= (--arch) and from_search= (--from-search)")
    if options.arch is not None:
        if options.supernet is None:
            raise ValueError("--supernet is required with --arch")
        return options.supernet, options.arch, list(options.luts)
    results_path = Path(options.from_search) / "results.json"  # type: ignore[arg-type]
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} does not exist: run hwnas search --out {options.from_search} first")
    results = read_json(results_path)
    found = results.get("found") or []
    budgets = [sorted(float(v) for v in entry["budgets_ms"].values()) for entry in found]
    if options.budget is None:
        if len(found) != 1:
            raise ValueError(f"{results_path} holds {len(found)} budgets {budgets}; choose one with --budget")
        entry = found[0]
    else:
        matches = [e for e, b in zip(found, budgets) if any(abs(v - options.budget) <= 1e-9 for v in b)]
        if not matches:
            raise ValueError(f"--budget {options.budget:g} is not among the searched budgets {budgets} in {results_path}")
        entry = matches[0]
    luts = list(options.luts) or [p for p in results.get("luts", {}).values() if Path(p).is_file()]
    return options.supernet or results["supernet"], entry["arch"], luts


def default_luts(space_name: str) -> list[str]:
    """The shipped calibrated profiles of this space for the local runtimes (ONNX → ort-cpu, TFLite → tflite),
    fp32 and, where shipped, int8 (``…-int8``: they price the int8 files)."""
    folders = [f"{RUNTIMES[f]}-1t-{space_name}{suffix}" for suffix in ("", "-int8") for f in FORMATS]
    return [str(p) for p in (REPO_PROFILES / folder / "lut.json" for folder in folders) if p.is_file()]


def _pricing(subnet: PreparedSubnet,
             lut_paths: list[str]) -> tuple[dict[str, float], dict[str, str], dict[tuple[str, str], dict]]:
    """Predicted latency of the arch per LUT, the LUT ids, and per (runtime target, precision) the LUT that prices
    it (the first given)."""
    predicted, ids, by_target = {}, {}, {}
    for path in lut_paths:
        table = LatencyTable.load(path)
        name = device_name(path)
        predicted[name] = float(LatencyPredictor(subnet.space, table).predict_one(subnet.arch))
        ids[name] = lut_id(path)
        meta = table.metadata
        target, precision = meta.get("target"), table.precision
        if target and (target, precision) not in by_target:
            threads = int((meta.get("runtime") or {}).get("threads") or 1)
            by_target[(target, precision)] = {"lut_id": ids[name], "predicted_ms": predicted[name], "threads": threads,
                                 "path": str(path), "target": target}
    return predicted, ids, by_target


def export(options: ExportOptions) -> dict[str, Any]:
    """The whole job; returns what ``report.json`` holds."""
    started = time.perf_counter()
    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown or not options.formats:
        raise ValueError(f"formats {list(options.formats)}: choose from {list(FORMATS)}")
    if options.tflite_int8 not in TFLITE_MODES:
        raise ValueError(f"tflite_int8={options.tflite_int8!r}: choose one of {list(TFLITE_MODES)}")
    if options.int8 and options.calib_images < 1:
        raise ValueError(f"calib_images={options.calib_images} must be >= 1 for int8")
    supernet, arch_source, lut_paths = resolve_arch(options)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    subnet = prepare_subnet(supernet, arch_source, data_dir=options.data_dir)
    if not lut_paths:  # the shipped profiles, where they price this arch (a user's own LUT must: it errors)
        lut_paths = [p for p in default_luts(subnet.space.name) if subnet.arch.r in
                     LatencyPredictor(subnet.space, LatencyTable.load(p)).served_resolutions]
    predicted, ids, by_target = _pricing(subnet, lut_paths)

    calib_nchw = subnet.inputs_nchw(subnet.data.calibration.images[:options.calib_images])
    test = subnet.data.test
    n_test = len(test) if options.test_images is None else min(options.test_images, len(test))
    # a seeded order, so that any prefix (the numeric, agreement and int8 images) is a uniform sample: test
    # splits often come sorted by class (the shipped subset does), and the first 500 would be three classes
    order = np.random.default_rng(0).permutation(len(test))[:n_test]
    # PyTorch runs on the images the files are compared with it on; the files are counted on all of them
    n_compared = max(options.numeric_images, options.agreement_images)
    ref = reference(subnet, test.images[order], test.labels[order], n_compared) if options.verify else None

    files: dict[str, str] = {}
    formats: dict[str, dict[str, Any]] = {}
    fp32_files = {fmt: build_fp32(subnet, fmt, model_metadata(subnet, predicted, ids, fmt)) for fmt in options.formats}
    variants = [(f, False) for f in options.formats] + ([(f, True) for f in options.formats] if options.int8 else [])
    threads = options.threads or usable_cores()
    for fmt, int8 in variants:
        key = f"{fmt}_int8" if int8 else fmt
        path = out / FILE_NAMES[key]
        fp32 = fp32_files[fmt]
        if not int8:
            write_bytes_atomic(path, fp32)
        elif fmt == "onnx":
            quantize_onnx(fp32, calib_nchw, path)
        else:  # full integer from the h-swish-as-ADD/MUL form: one XNNPACK partition instead of one per h-swish
            source = (build_fp32(subnet, fmt, model_metadata(subnet, predicted, ids, fmt), for_full_integer=True)
                      if options.tflite_int8 == "static" else fp32)
            quantize_tflite(source, np.ascontiguousarray(calib_nchw.transpose(0, 2, 3, 1)), path, mode=options.tflite_int8)
        data = path.read_bytes()
        precision = "fp32" if not int8 else "int8" if fmt == "onnx" or options.tflite_int8 == "static" else "int8-dynamic"
        entry: dict[str, Any] = {"file": path.name, "size_bytes": len(data), "precision": precision}
        fp32_pricing = by_target.get((RUNTIMES[fmt], "fp32"))
        pricing = by_target.get((RUNTIMES[fmt], precision))  # an int8 file is priced by an int8 LUT only
        entry["predicted_latency_ms"] = None if pricing is None else round(pricing["predicted_ms"], 4)
        if pricing is not None:
            entry["lut"] = pricing["lut_id"]
        elif fp32_pricing is not None:
            entry["lut"] = f"{fp32_pricing['lut_id']} (fp32 LUT: not a prediction for {precision})"
        entry["timing"] = timing_spec(fmt, subnet.resolution, pricing or fp32_pricing, int8)
        if ref is not None:
            limit = options.int8_test_images if int8 else None
            entry.update(compare(str(path), ref, int8, options.numeric_images, options.agreement_images, threads,
                                 limit=limit))
        formats[key] = entry
        files[path.name] = f"{precision} {'ONNX (opset 17, NCHW, batch 1)' if fmt == 'onnx' else 'TFLite (NHWC, batch 1)'}"
        if options.progress:
            print(f"[export] {key}: {path} ({len(data) / 1e6:.2f} MB)", flush=True)

    space = subnet.space
    arch_info = {"space": space.name, "space_hash": space.content_hash, "arch": subnet.arch.to_dict(),
                 "resolution": subnet.resolution, "macs": space.macs(subnet.arch), "params": space.params(subnet.arch),
                 "predicted_latency_ms": {k: round(v, 4) for k, v in predicted.items()}, "luts": ids}
    report = {
        **arch_info, "supernet": str(supernet), "classes": subnet.classes,
        "pytorch_test_acc": None if ref is None else float(np.mean(ref.logits.argmax(1) == ref.labels[:len(ref.logits)])),
        "pytorch_test_images": None if ref is None else len(ref.logits),
        "formats": formats, "passed": all(f.get("passed", True) for f in formats.values()), "measured": False,
        "options": asdict(options),
    }
    if options.measure:  # every file of the bundle and the drift anchors in the same interleaved rounds
        measure_reports([(out, report)], options.drift_anchors)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    write_bundle(out, subnet, files, arch_info)
    write_json_atomic(out / "report.json", report)
    return report


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def report_table(report: dict[str, Any]) -> str:
    """The verification table printed at the end of ``hwnas export``."""
    header = (f"{'file':<20}{'size MB':>9}{'max|Δ|':>11}{'top-1 agr':>11}{'test acc':>10}{'LUT ms':>9}"
              f"{'measured':>10}{'check':>7}")
    lines = [header]

    def fmt(entry: dict[str, Any], key: str, spec: str) -> str:
        value = entry.get(key)
        return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"

    for entry in report["formats"].values():
        check = "-" if "passed" not in entry else ("PASS" if entry["passed"] else "FAIL")
        lines.append(f"{entry['file']:<20}{entry['size_bytes'] / 1e6:>9.2f}{fmt(entry, 'max_abs_diff', '>11.2e')}"
                     f"{fmt(entry, 'top1_agreement', '>11.4f')}{fmt(entry, 'test_acc', '>10.4f')}"
                     f"{fmt(entry, 'predicted_latency_ms', '>9.3f')}"
                     f"{fmt(entry, 'measured_latency_ms', '>10.3f')}{check:>7}")
    for entry in report["formats"].values():
        speed = entry.get("machine_speed_vs_validation")
        if speed:
            lines.append(f"{entry['file']}: this machine runs at {speed['factor']:.1%} of the LUT validation's time "
                         f"({speed['anchors']} validation subnets re-timed) -> LUT now {entry['predicted_now_ms']:.3f} ms, "
                         f"measured {entry['measured_vs_predicted_now']:+.1%} vs it ({entry['measured_vs_predicted']:+.1%} "
                         "vs the LUT as stored)")
    if report.get("pytorch_test_acc") is not None:
        lines.append(f"PyTorch subnet test accuracy {report['pytorch_test_acc']:.4f} on the "
                     f"{report.get('pytorch_test_images') or 'same'} images the files were compared with it on")
    return "\n".join(lines)
