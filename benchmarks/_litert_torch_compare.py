"""TFLite fp32 of the largest and the k7-, k5- and k3-heavy tiny-mbv3 zoo subnets: hwnas's writer against litert-torch's
converter, and onnxruntime on hwnas's ONNX file, timed side by side (1 thread, batch 1, XNNPACK for both TFLite files).

Needs the optional extra (``pip install -e '.[convert]'``: litert-torch, ≈2 GB with jax), so it is not part of
``make bench`` (the leading underscore); run it in an environment that has it:

    python benchmarks/_litert_torch_compare.py [--data-dir ../shared/data/cifar10]

Issue 31's bar: hwnas's TFLite ≤ 1.1× litert-torch's, and within 1.5× of onnxruntime (or the op-level profile
that shows XNNPACK itself is slower there: ``benchmarks/runtime_ops.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    args = parser.parse_args()
    import litert_torch
    import torch

    from hwnas.export.subnet import prepare_subnet
    from hwnas.formats.onnx_writer import module_to_onnx
    from hwnas.formats.tflite_writer import module_to_tflite
    from hwnas.nn import load_supernet
    from hwnas.space import Arch
    from hwnas.zoo.entry import resolve_supernet
    from runtime_ops import interleaved_ms, ort_runner, tflite_runner

    torch.set_num_threads(1)
    supernet = resolve_supernet("tiny-mbv3-cifar10")
    load, started = os.getloadavg()[0], time.time()
    rows = []
    space = load_supernet(supernet).space
    largest = space.max_arch()
    middle = sorted(space.expand)[len(space.expand) // 2]
    chosen = {"largest": largest, **{f"k{k}-heavy": Arch(ks=[k] * len(largest.ks), e=[middle] * len(largest.e),
                                                          d=list(largest.d), r=largest.r) for k in (7, 5, 3)}}
    for name, arch in chosen.items():
        subnet = prepare_subnet(supernet, arch.to_dict(), data_dir=args.data_dir)
        module = subnet.module.eval()
        shape = (1, 3, arch.r, arch.r)
        x = subnet.inputs_nchw(subnet.data.test.images[:1])
        ours = module_to_tflite(module, shape)
        with tempfile.TemporaryDirectory() as tmp:
            converted = litert_torch.convert(module, (torch.from_numpy(x),))
            path = Path(tmp) / "theirs.tflite"
            converted.export(str(path))
            theirs = path.read_bytes()
        runners = {"hwnas": tflite_runner(ours), "litert-torch": tflite_runner(theirs),
                   "ort": ort_runner(module_to_onnx(module, shape, dynamic_batch=False), shape)}
        partitions = {name: runners[name].delegation()["delegate_nodes"] for name in ("hwnas", "litert-torch")}
        ms = interleaved_ms(runners)
        rows.append(f"| {name} (r{arch.r}, {space.macs(arch) / 1e6:.1f} M MACs) | {ms['hwnas']:.3f} "
                    f"({partitions['hwnas']}) | {ms['litert-torch']:.3f} ({partitions['litert-torch']}) | {ms['ort']:.3f} "
                    f"| {ms['hwnas'] / ms['litert-torch']:.2f}× | {ms['hwnas'] / ms['ort']:.2f}× |")
        print(rows[-1], flush=True)
    print("\n".join([
        "## TFLite fp32: hwnas's writer against litert-torch (`benchmarks/_litert_torch_compare.py`)\n",
        "Zoo `tiny-mbv3-cifar10` subnets, batch 1, 1 thread, the LUTs' runners and protocol (8 shuffled passes, lowest "
        f"trimmed mean); load {load:.2f} at start; "
        f"{time.time() - started:.0f} s. ms (XNNPACK partitions).\n",
        "| subnet | hwnas TFLite ms | litert-torch TFLite ms | onnxruntime ms | hwnas / litert-torch | hwnas / ort |",
        "|---|---:|---:|---:|---:|---:|", *rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
