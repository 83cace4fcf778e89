"""The demo's results: one row per (runtime, budget) joining the search's prediction with the exported files'
measurements, the checks the demo is held to, and ``report.md``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stages import FORMAT_OF, Supernet, arch_key

LATENCY_TOLERANCE = 0.10     # measured vs predicted
MONOTONE_SLACK = 0.003       # accuracy may dip this much as the budget grows (sampling noise of 2,000 images)

COLUMNS = ("runtime", "budget ms", "LUT ms", "measured ms", "error %", "raw error %", "int8 LUT ms", "int8 measured ms",
           "int8 error %", "val acc %",
           "val acc from",
           "test acc % fp32", "test acc % int8", "MACs M", "file kB fp32/int8", "fp32 check", "int8 (experimental)")


@dataclass(frozen=True)
class Row:
    runtime: str
    budget: float
    lut_ms: float
    measured_ms: float | None
    error: float | None            # measured vs predicted, drift-corrected where the anchors allow
    raw_error: float | None        # measured vs the LUT as stored
    int8_lut_ms: float | None      # the int8 file's prediction by its runtime's int8 LUT (None: no int8 LUT)
    int8_ms: float | None
    int8_error: float | None       # measured vs the int8 LUT as stored
    predicted_acc: float            # what the search ranked it by, on the validation split ...
    acc_source: str                 # ... "predicted" by the accuracy predictor or "measured" on the supernet
    test_acc: float | None         # the fp32 file's, on the shipped test images
    int8_acc: float | None
    int8_agreement: float | None
    macs: int
    kb: tuple[float, float | None]
    fp32_passed: bool
    folder: str

    def cells(self) -> list[str]:
        def num(value: float | None, spec: str) -> str:
            return "n/a" if value is None else format(value, spec)

        int8 = "not exported" if self.int8_agreement is None else f"top-1 agreement {self.int8_agreement:.1%}"
        return [self.runtime, f"{self.budget:g}", f"{self.lut_ms:.3f}", num(self.measured_ms, ".3f"),
                num(None if self.error is None else 100 * self.error, "+.1f"),
                num(None if self.raw_error is None else 100 * self.raw_error, "+.1f"), num(self.int8_lut_ms, ".3f"),
                num(self.int8_ms, ".3f"), num(None if self.int8_error is None else 100 * self.int8_error, "+.1f"),
                f"{100 * self.predicted_acc:.2f}", self.acc_source,
                num(None if self.test_acc is None else 100 * self.test_acc, ".2f"),
                num(None if self.int8_acc is None else 100 * self.int8_acc, ".2f"), f"{self.macs / 1e6:.1f}",
                f"{self.kb[0]:.0f}/{num(self.kb[1], '.0f')}", "pass" if self.fp32_passed else "FAIL", int8]


def result_rows(searches: dict[str, dict[str, Any]], reports: dict[str, dict[str, Any]]) -> list[Row]:
    """Per runtime, per budget: the chosen arch's prediction next to its fp32 and int8 files on that runtime."""
    rows = []
    for runtime, results in searches.items():
        fmt = FORMAT_OF[runtime]
        for found in results["found"]:
            report = reports[arch_key(found["arch"])]
            fp32, int8 = report["formats"][fmt], report["formats"].get(f"{fmt}_int8")
            error = fp32.get("measured_vs_predicted_now", fp32.get("measured_vs_predicted"))
            device = next(iter(found["budgets_ms"]))
            rows.append(Row(
                runtime=runtime, budget=float(found["budgets_ms"][device]), lut_ms=float(found["latency_ms"][device]),
                measured_ms=fp32.get("measured_latency_ms"), error=error, raw_error=fp32.get("measured_vs_predicted"),
                int8_lut_ms=None if int8 is None else int8.get("predicted_latency_ms"),
                int8_ms=None if int8 is None else int8.get("measured_latency_ms"),
                int8_error=None if int8 is None else int8.get("measured_vs_predicted"),
                predicted_acc=float(found["accuracy"]), acc_source=found.get("accuracy_source", "predicted"),
                test_acc=fp32.get("test_acc"),
                int8_acc=None if int8 is None else int8.get("test_acc"),
                int8_agreement=None if int8 is None else int8.get("top1_agreement"), macs=int(report["macs"]),
                kb=(fp32["size_bytes"] / 1e3, None if int8 is None else int8["size_bytes"] / 1e3),
                fp32_passed=bool(fp32.get("passed", False)), folder=report["folder"]))
    return rows


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def console_table(rows: list[Row]) -> str:
    cells = [row.cells() for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def checks(rows: list[Row], smallest_ms: dict[str, float], smallest_acc: float = 0.78,
           largest_acc: float = 0.84) -> list[tuple[str, bool, str]]:
    """The demo's bars, each as (what, held, the figures): per runtime, test accuracy does not fall as the
    budget grows (within ``MONOTONE_SLACK``), the smallest budget's subnet reaches ``smallest_acc`` and the
    largest's ``largest_acc``, and every measured latency is within ``LATENCY_TOLERANCE`` of its prediction (fp32,
    and int8 where an int8 LUT priced the int8 files)."""
    results = []
    for runtime in dict.fromkeys(r.runtime for r in rows):
        mine = sorted((r for r in rows if r.runtime == runtime), key=lambda r: r.budget)
        accs = [r.test_acc for r in mine]
        if any(a is None for a in accs):
            results.append((f"{runtime}: accuracy grows with the budget", False, "a test accuracy is missing"))
            continue
        drops = [(a.budget, b.budget, b.test_acc - a.test_acc) for a, b in zip(mine, mine[1:])
                 if b.test_acc < a.test_acc - MONOTONE_SLACK]  # type: ignore[operator]
        results.append((f"{runtime}: test accuracy does not fall as the budget grows (±{100 * MONOTONE_SLACK:.1f} pts)",
                        not drops, " → ".join(f"{100 * a:.2f}%" for a in accs)
                        + "".join(f"; {lo:g}→{hi:g} ms drops {100 * -d:.2f} pts" for lo, hi, d in drops)))
        low, high = mine[0], mine[-1]
        if low.budget < smallest_ms[runtime]:
            results.append((f"{runtime}: smallest budget ≥ {100 * smallest_acc:.0f}%", False,
                            f"{low.budget:g} ms is below the smallest subnet's {smallest_ms[runtime]:.3f} ms"))
        else:
            results.append((f"{runtime}: smallest budget's subnet ≥ {100 * smallest_acc:.0f}%",
                            low.test_acc >= smallest_acc, f"{100 * low.test_acc:.2f}% at {low.budget:g} ms"))  # type: ignore[operator]
        results.append((f"{runtime}: largest budget's subnet ≥ {100 * largest_acc:.0f}%",
                        high.test_acc >= largest_acc, f"{100 * high.test_acc:.2f}% at {high.budget:g} ms"))  # type: ignore[operator]
        errors = [r.error for r in mine]
        held = all(e is not None and abs(e) <= LATENCY_TOLERANCE for e in errors)
        results.append((f"{runtime}: measured latency within ±{100 * LATENCY_TOLERANCE:.0f}% of the LUT", held,
                        ", ".join("n/a" if e is None else f"{100 * e:+.1f}%" for e in errors)))
        int8_errors = [r.int8_error for r in mine]
        if any(r.int8_lut_ms is not None for r in mine):
            held = all(e is not None and abs(e) <= LATENCY_TOLERANCE for e in int8_errors)
            results.append((f"{runtime}: int8 measured latency within ±{100 * LATENCY_TOLERANCE:.0f}% of the int8 LUT",
                            held, ", ".join("n/a" if e is None else f"{100 * e:+.1f}%" for e in int8_errors)))
    return results


def _supernet_lines(supernet: Supernet) -> str:
    if supernet.card is not None:
        card = supernet.card
        full = {row["name"]: row["test_acc"] for row in card["accuracy"]["test"]}
        shipped = {row["name"]: row["test_acc"] for row in card["accuracy"]["shipped_test"]}
        val = card["predictor"]["val"]
        return (f"- **Supernet**: {supernet.origin}, trained by progressive shrinking on 45,000 CIFAR-10 images "
                f"(`zoo/{card['name']}/MODEL_CARD.md`): on the 10,000 test images smallest {full['smallest']:.1%}, "
                f"middle {full['middle']:.1%}, largest {full['largest']:.1%}; on the shipped 2,000 (the table's images) "
                f"{shipped['smallest']:.1%}, {shipped['middle']:.1%}, {shipped['largest']:.1%}: the floor and ceiling "
                f"of the table's accuracy column.\n"
                f"- **Accuracy predictor**: the zoo model's, fitted on {card['predictor']['n_train']:,} subnets "
                f"measured on the validation split; on {val['n']} held-out subnets Spearman {val['spearman']:.3f}, "
                f"MAE {val['mae_pts']:.2f} pts.")
    lines = f"- **Supernet**: {supernet.origin} (`{supernet.path}`)."
    if supernet.training is not None:
        training = supernet.training
        lines += (f" {training['steps']} steps in {training['wall_s'] / 60:.1f} min; test accuracy "
                  + ", ".join(f"{s['name']} {s['test_acc']:.1%}" for s in training["subnets"]) + ".")
    return lines + "\n- **Accuracy predictor**: fitted by this demo on subnets measured on the holdout."


def _stage_times(stage_seconds: dict[str, float] | None) -> str:
    return ", ".join(f"{stage} {value:.0f} s" for stage, value in (stage_seconds or {}).items()) or "n/a"


def write_report(out: Path, supernet: Supernet, searches: dict[str, dict[str, Any]], rows: list[Row],
                 verdicts: list[tuple[str, bool, str]], profile_lines: list[str], seconds: float, machine: str,
                 test_images: int, int8_images: str, stage_seconds: dict[str, float] | None = None) -> Path:
    """``report.md``: the results table, the checks, each stage's numbers and the plots."""
    from ..atomic import write_bytes_atomic

    verdict_lines = "\n".join(f"- {'held' if held else '**not held**'}: {what} — {figures}" for what, held, figures in verdicts)
    search_lines = "; ".join(f"{runtime} {results['search_seconds']:.1f} s for {len(results['found'])} budgets"
                             for runtime, results in searches.items())
    text = f"""# hwnas demo report

`tiny-mbv3` searched for this machine ({machine}) on onnxruntime and TFLite (LiteRT), 1 thread, in
{seconds / 60:.1f} min. Budgets are spread over each runtime's LUT range, from just above the smallest subnet
to the largest. "LUT ms" is the calibrated prediction; "measured ms" the exported fp32 file timed end to end here
(batch 1); "error %" compares them, corrected for this machine's drift since the LUT's validation (the
protocol's anchor subnets, timed beside each file), "raw error %" against the LUT as stored. "val acc"
is what the search ranked the subnet by, on the validation split with BN recalibrated on full training data:
the accuracy predictor's, or the subnet's measured accuracy where the zoo measured it ("val acc from"). Expect
the shipped test images to read 1–2 points lower. Accuracies are top-1 on the {test_images:,} shipped CIFAR-10 test images
(one binomial standard error ≈ 0.8 pts), counted by each exported file on its runtime; the int8 files on
{int8_images} of them. The int8 files are ONNX QDQ (uint8 activations, per-channel int8 weights) and full-integer
TFLite, calibrated on training images; "int8 LUT ms" is the runtime's int8 LUT's prediction for them and
"int8 error %" the measured int8 file against it (as stored: no drift correction).

## Results

{markdown_table(rows)}

int8 is **experimental**: the int8 files are verified (top-1 agreement with PyTorch, bar 98%: full-integer files
often land at 96–97.5%) and timed, but on this kind of x86 CPU neither runtime's int8 beats its fp32 at these sizes
(onnxruntime's int8 depthwise kernels are slower than its fp32 ones: `benchmarks/runtime_ops.py`). fp32 files
must match PyTorch's logits within 1e-4. Bundles (model files, `run.py`, `README.md`, `report.json`):
`export/<runtime>-<budget>ms/`.

## Checks

{verdict_lines}

## Stages

- **Latency tables**: {"; ".join(profile_lines)}.
{_supernet_lines(supernet)}
- **Search**: evolution (population 100) per runtime: {search_lines}.
- **Wall time**: {_stage_times(stage_seconds)}; {seconds / 60:.1f} min in all.

![Pareto fronts with measured points](pareto.png)
![Predicted vs measured latency](latency.png)
![Accuracy vs latency](accuracy_latency.png)
"""
    path = out / "report.md"
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


def parse_table(report: str) -> list[dict[str, str]]:
    """The results table of a ``report.md`` back into rows (column → cell); a malformed table raises."""
    lines = [line for line in report.splitlines() if line.startswith("| runtime |")]
    if len(lines) != 1:
        raise ValueError(f"report has {len(lines)} results tables")
    body = report.splitlines()
    start = body.index(lines[0])
    header = [c.strip() for c in body[start].strip("|").split("|")]
    rows = []
    for line in body[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(header):
            raise ValueError(f"row {line!r} has {len(cells)} cells for {len(header)} columns")
        rows.append(dict(zip(header, cells)))
    return rows
