"""Op-level profiles behind issue 31's two speed gaps: TFLite's 7×7 depthwise, and int8 that is not faster.

    python benchmarks/runtime_ops.py          # ~1.5 min, 1 thread

1. **One depthwise convolution per model** (k3/k5/k7 on four tiny-mbv3 shapes): LiteRT with XNNPACK, LiteRT with
   its builtin kernels only, and onnxruntime, timed in one process with the LUTs' runners and protocol (8 passes in
   a shuffled order, lowest trimmed mean: ``interleaved_ms``). A single op in a file of its
   own is one XNNPACK partition with nothing around it, so whatever the ratio is, it is the kernel's.
2. **onnxruntime's own profiler on the largest tiny-mbv3 subnet**, fp32 against int8 (QDQ U8S8 per channel,
   as export writes it): kernel time per op kind, convolutions split into depthwise-k and dense-k. It shows
   where an int8 file's time goes: the convolutions themselves, and the quantise/dequantise and float ops
   between them.
3. **int8 against fp32 on ofa-mbv3-w1.0** (224 px, smallest and largest subnet), both runtimes: whether int8
   gains where the layers are larger than tiny-mbv3's.

Weights are seeded random (timing depends on shapes only); int8 is calibrated on 8 seeded random inputs, as the
int8 LUTs are. The accuracy of int8 files is `benchmarks/int8.py`'s, on the trained zoo supernet.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEPTHWISE_SHAPES = [(96, 20, 1, "relu"), (240, 10, 1, "h_swish"), (144, 20, 2, "relu"), (480, 5, 1, "h_swish")]
KERNELS = (3, 5, 7)


def depthwise_graph(channels: int, size: int, kernel: int, stride: int, act: str, rng: np.random.Generator):
    from hwnas.formats.ir import Conv, Graph

    graph = Graph(input="input", input_shape=(1, channels, size, size))
    weight = (0.1 * rng.standard_normal((channels, 1, kernel, kernel))).astype(np.float32)
    graph.nodes.append(Conv("input", "y", weight, rng.standard_normal(channels).astype(np.float32), stride,
                            kernel // 2, channels, act))
    graph.output = "y"
    return graph


def one_op_tflite(graph) -> bytes:
    """The file with a large depthwise kernel written as one op, not split into row bands as export writes it."""
    from hwnas.formats import tflite_writer

    split_above = tflite_writer.MAX_DEPTHWISE_TAPS
    tflite_writer.MAX_DEPTHWISE_TAPS = 10**6
    try:
        return tflite_writer.graph_to_tflite(graph)
    finally:
        tflite_writer.MAX_DEPTHWISE_TAPS = split_above


def ort_options():
    """The session options the ort-cpu LUTs are timed with (1 thread, ORT_ENABLE_ALL, no spinning)."""
    from hwnas.latency.targets.ort_cpu import OrtCpuTarget

    return OrtCpuTarget(threads=1).session_options()


def ort_runner(model: bytes, input_shape: tuple[int, ...]):
    from hwnas.latency.targets.ort_cpu import OrtRunner

    return OrtRunner(model, ort_options(), input_shape)


def tflite_runner(model: bytes, xnnpack: bool = True):
    from hwnas.latency.targets.tflite import TfliteRunner

    return TfliteRunner(model, threads=1, xnnpack=xnnpack)


def interleaved_ms(runners: dict, passes: int = 8, seed: int = 0) -> dict[str, float]:
    """ms per run of each runner, the profiler's statistic: every pass times each runner once under the LUTs'
    protocol (``hwnas.latency.protocol.measure``) in a shuffled order, and the lowest trimmed mean is kept."""
    from hwnas.latency.protocol import Protocol, measure

    names = list(runners)
    means: dict[str, list[float]] = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    for _ in range(passes):
        for index in rng.permutation(len(names)):
            means[names[index]].append(measure(runners[names[index]], Protocol()).mean)
    return {name: min(values) for name, values in means.items()}


def depthwise_section() -> list[str]:
    from hwnas.formats.onnx_writer import graph_to_onnx
    from hwnas.formats.tflite_writer import graph_to_tflite

    rng = np.random.default_rng(0)
    rows, per_mac = [], collections.defaultdict(list)
    for channels, size, stride, act in DEPTHWISE_SHAPES:
        for kernel in KERNELS:
            graph = depthwise_graph(channels, size, kernel, stride, act, rng)
            tflite, onnx_model = graph_to_tflite(graph), graph_to_onnx(graph, dynamic_batch=False)
            runners = {"xnnpack": tflite_runner(tflite), "builtin": tflite_runner(tflite, xnnpack=False),
                       "ort": ort_runner(onnx_model, graph.input_shape)}
            ops = len(runners["builtin"].delegation()["ops"])
            partitions = runners["xnnpack"].delegation()["delegate_nodes"]
            if ops > 1:
                runners["one_op"] = tflite_runner(one_op_tflite(graph))
            us = {name: 1e3 * ms for name, ms in interleaved_ms(runners).items()}
            macs = channels * (size // stride) ** 2 * kernel * kernel
            per_mac[kernel].append(us["xnnpack"] / us["ort"])
            one_op = f"{us['one_op']:.1f}" if "one_op" in us else "–"
            rows.append(f"| {channels}×{size}×{size}, stride {stride}, {act} | {kernel}×{kernel} | {macs / 1e3:.0f} "
                        f"| {ops} / {partitions} | {us['xnnpack']:.1f} | {one_op} | {us['builtin']:.1f} | {us['ort']:.1f} "
                        f"| {us['xnnpack'] / us['ort']:.2f}× | {1e6 * us['xnnpack'] / macs:.0f} "
                        f"| {1e6 * us['ort'] / macs:.0f} |")
    summary = "; ".join(f"{k}×{k} {min(v):.2f}–{max(v):.2f}×" for k, v in per_mac.items())
    return [
        "### One depthwise convolution per model: XNNPACK against onnxruntime\n",
        "Each row is a file holding one depthwise conv (BN folded, fused activation), written by hwnas's TFLite and "
        "ONNX writers as export writes them: a 7×7 kernel in TFLite is three row bands of ≤ 25 taps (PAD, SLICE, "
        "DEPTHWISE_CONV_2D, ADD; 'ops'), all in one XNNPACK partition ('partitions'). 'one op' is the same 7×7 written "
        "as a single 49-tap DEPTHWISE_CONV_2D, the form export does not use.\n",
        "| depthwise input | kernel | k MACs | ops / partitions | XNNPACK µs | one op µs | builtin µs | onnxruntime µs "
        "| XNNPACK / ort | XNNPACK ps/MAC | ort ps/MAC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"XNNPACK / onnxruntime by kernel: {summary}. The file is whole in XNNPACK; the 7×7 gap is XNNPACK's "
        "depthwise kernels against onnxruntime's (whose time per MAC falls as the kernel grows), in the fastest form "
        "of the op that XNNPACK takes.\n",
    ]


def profile_kinds(model: bytes, runs: int = 300) -> tuple[dict[str, float], float]:
    """µs per run of each op kind (depthwise convs as dwK, dense as convK) from onnxruntime's profiler."""
    import onnx

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ortprof-") as tmp:
        prefix = str(Path(tmp) / "profile")
        options = ort_options()
        options.enable_profiling = True
        options.profile_file_prefix = prefix
        options.optimized_model_filepath = prefix + "-optimized.onnx"
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        feed = {spec.name: np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        optimized = onnx.load(prefix + "-optimized.onnx")
    kinds = {}
    for node in optimized.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if "Conv" in node.op_type:
            kernel = attrs.get("kernel_shape", [1])[0]
            kinds[node.name] = f"depthwise {kernel}×{kernel}" if attrs.get("group", 1) > 1 else f"conv {kernel}×{kernel}"
        else:
            kinds[node.name] = node.op_type
    totals: dict[str, float] = collections.defaultdict(float)
    model_runs = [e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"][:-len("_kernel_time")]
            totals[kinds.get(name, event["args"]["op_name"])] += event["dur"] / len(model_runs)
    return dict(totals), float(np.median(model_runs[len(model_runs) // 5:]))


def ort_int8_section() -> list[str]:
    from hwnas.latency.targets.base import static_subnet
    from hwnas.latency.targets.ort_cpu import OrtCpuTarget
    from hwnas.space import get_space

    space = get_space("tiny-mbv3")
    arch = space.max_arch()
    subnet = static_subnet(space.signatures(arch), seed=0)
    profiles = {p: profile_kinds(OrtCpuTarget(threads=1, precision=p).build_subnet(subnet, arch.r).payload)
                for p in ("fp32", "int8")}
    conv_kinds = sorted({k for p in profiles.values() for k in p[0] if k.startswith(("conv", "depthwise"))})
    rows = []
    for kind in conv_kinds:
        fp32, int8 = profiles["fp32"][0].get(kind, 0.0), profiles["int8"][0].get(kind, 0.0)
        ratio = f"{int8:.0f} | {fp32 / int8:.2f}×" if int8 else "– | –"
        rows.append(f"| {kind} | {fp32:.0f} | {ratio} |")
    rest = {p: sum(v for k, v in prof.items() if k not in conv_kinds) for p, (prof, _) in profiles.items()}
    between = ", ".join(f"{k} {v:.0f}" for k, v in sorted(profiles["int8"][0].items(), key=lambda t: -t[1])
                        if k not in conv_kinds)
    conv = {p: sum(prof.get(k, 0.0) for k in conv_kinds) for p, (prof, _) in profiles.items()}
    rows.append(f"| all convolutions | {conv['fp32']:.0f} | {conv['int8']:.0f} | {conv['fp32'] / conv['int8']:.2f}× |")
    rows.append(f"| everything else | {rest['fp32']:.0f} | {rest['int8']:.0f} | {rest['fp32'] / rest['int8']:.2f}× |")
    run = {p: profiles[p][1] for p in profiles}
    rows.append(f"| whole run (profiler on) | {run['fp32']:.0f} | {run['int8']:.0f} | {run['fp32'] / run['int8']:.2f}× |")
    return [
        f"### onnxruntime int8 against fp32, op by op: largest tiny-mbv3 subnet (r{arch.r}, "
        f"{space.macs(arch) / 1e6:.1f} M MACs)\n",
        "Kernel µs per run from onnxruntime's profiler (300 runs, 1 thread), grouped over the graph onnxruntime runs "
        "after its optimisations (fp32: NCHWc convs with fused activations; int8: QLinearConv). fp32 / int8 > 1 "
        "means int8 is faster.\n",
        "| op kind | fp32 µs | int8 µs | fp32 / int8 |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"int8 time outside the convolutions, µs: {between}. Were all of it free, the int8 kernels would sum to "
        f"{conv['int8']:.0f} µs against fp32's {conv['fp32'] + rest['fp32']:.0f} µs: "
        f"{(conv['fp32'] + rest['fp32']) / conv['int8']:.2f}×.\n",
    ]


def int8_speed_section(space_name: str = "ofa-mbv3-w1.0", resolution: int = 224) -> list[str]:
    """fp32 against int8 on both runtimes (ONNX QDQ U8S8, full-integer TFLite, as export and the int8 LUTs write
    them) for a larger space's smallest and largest subnet, timed interleaved."""
    from hwnas.latency.targets.base import static_subnet
    from hwnas.latency.targets.ort_cpu import OrtCpuTarget
    from hwnas.latency.targets.tflite import TfliteTarget
    from hwnas.space import get_space

    space, rows = get_space(space_name), []
    for name, arch in (("smallest", space.min_arch(resolution)), ("largest", space.max_arch(resolution))):
        subnet = static_subnet(space.signatures(arch), seed=0)
        runners = {}
        for runtime, target_class in (("ort", OrtCpuTarget), ("tflite", TfliteTarget)):
            for precision in ("fp32", "int8"):
                target = target_class(threads=1, precision=precision)
                runners[f"{runtime} {precision}"] = target.runner(target.build_subnet(subnet, arch.r))
        us = {key: 1e3 * ms for key, ms in interleaved_ms(runners).items()}
        rows.append(f"| {name} (r{arch.r}, {space.macs(arch) / 1e6:.0f} M MACs) | {us['ort fp32'] / 1e3:.2f} "
                    f"| {us['ort int8'] / 1e3:.2f} | {us['ort fp32'] / us['ort int8']:.2f}× | {us['tflite fp32'] / 1e3:.2f} "
                    f"| {us['tflite int8'] / 1e3:.2f} | {us['tflite fp32'] / us['tflite int8']:.2f}× |")
    return [
        f"### int8 against fp32 on a larger space: `{space_name}` at {resolution} px\n",
        "Seeded random weights, int8 calibrated on 8 random inputs (latency depends on shapes only). fp32 / int8 > 1 "
        "means int8 is faster; the goal is ≥ 1.3× for the largest subnet.\n",
        "| subnet | ort fp32 ms | ort int8 ms | ort fp32 / int8 | TFLite fp32 ms | TFLite int8 ms | TFLite fp32 / int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows, "",
    ]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    load, started = os.getloadavg()[0], time.time()
    lines = ["## Runtime op profiles (`benchmarks/runtime_ops.py`)\n",
             f"1 thread, batch 1; load average {load:.2f} at start.\n",
             *depthwise_section(), *ort_int8_section(), *int8_speed_section(),
             f"({time.time() - started:.0f} s.)"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
