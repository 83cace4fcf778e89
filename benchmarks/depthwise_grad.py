"""The native depthwise weight gradient against oneDNN's, side by side in one process.

1. Per depthwise layer of the largest ``tiny-mbv3`` subnet (batch 64, the per-rank batch of a 2-process
   ``hwnas train``, 1 thread as each rank runs): oneDNN's weight gradient (``aten.convolution_backward``)
   against ``hwnas._C.depthwise_weight_grad`` on the same tensors, and their largest difference.
2. One optimiser step of every phase of the ``standard`` schedule (``Trainer._step`` on a random batch),
   with the native gradient on and off, interleaved step by step; medians.

    python benchmarks/depthwise_grad.py [--batch 64] [--steps 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch
from run_all import measured_on  # benchmarks/ is on sys.path: the scripts run as `python benchmarks/NAME.py`

from hwnas import _C, get_space
from hwnas.nn import ElasticDepthwiseConv, OFAMobileNetV3
from hwnas.nn.depthwise import NATIVE_KERNELS, native_weight_grad
from hwnas.train import TrainConfig, Trainer, make_schedule


class RandomBatches:
    """A loader of ``batches`` random batches per epoch (the trainer's loader protocol)."""

    def __init__(self, batch: int, size: int, batches: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(batch, 3, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g))
                     for _ in range(batches)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def layer_inputs(net: OFAMobileNetV3, batch: int, r: int) -> list[tuple[ElasticDepthwiseConv, torch.Tensor]]:
    """Each depthwise layer of the active subnet with the channels-last input it receives."""
    seen: list[tuple[ElasticDepthwiseConv, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append((m, args[0].detach())))
             for m in net.modules() if isinstance(m, ElasticDepthwiseConv)]
    with torch.no_grad():
        net(torch.randn(batch, 3, r, r).contiguous(memory_format=torch.channels_last))
    for hook in hooks:
        hook.remove()
    return seen


def kernel_table(space_name: str, batch: int, repeats: int) -> float:
    """Print the per-layer table; return oneDNN's total time over the native one's."""
    space = get_space(space_name)
    net = OFAMobileNetV3(space).train()
    r = 32
    net.set_active(space.max_arch().to_dict() | {"r": r})
    print(f"Largest subnet at r={r}, batch {batch}: each depthwise layer's weight gradient (median of {repeats}).\n")
    print("| layer | input C×H×W | k | stride | oneDNN | native | oneDNN / native | max rel. diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = [0.0, 0.0]
    for index, (layer, x) in enumerate(layer_inputs(net, batch, r)):
        k, s = layer.active_kernel, layer.stride
        weight = layer.active_weight(x.size(1), k).detach()
        out = torch.nn.functional.conv2d(x, weight, None, s, k // 2, 1, x.size(1))
        g = torch.randn_like(out).contiguous(memory_format=torch.channels_last)
        args = (g, x, weight, None, [s, s], [k // 2, k // 2], [1, 1], False, [0, 0], x.size(1), [False, True, False])
        onednn = partial(torch.ops.aten.convolution_backward, *args)
        native = partial(_C.depthwise_weight_grad, x.permute(0, 2, 3, 1).numpy(), g.permute(0, 2, 3, 1).numpy(), k, s,
                         k // 2, torch.get_num_threads())
        ref = onednn()[1]
        diff = float((torch.from_numpy(native()).view_as(ref) - ref).abs().max() / ref.abs().max())
        a, b = median_ms(onednn, repeats), median_ms(native, repeats)
        totals[0] += a
        totals[1] += b
        shape = "×".join(map(str, x.shape[1:]))
        print(f"| {index} | {shape} | {k} | {s} | {a:.2f} ms | {b:.2f} ms | {a / b:.1f}× | {diff:.1e} |")
    print(f"| all | | | | {totals[0]:.1f} ms | {totals[1]:.1f} ms | {totals[0] / totals[1]:.1f}× | |\n")
    return totals[0] / totals[1]


def step_table(space_name: str, batch: int, steps: int) -> list[float]:
    """Print the per-phase table; return each phase's fraction of step time saved."""
    space = get_space(space_name)
    torch.manual_seed(0)
    net = OFAMobileNetV3(space)
    schedule = make_schedule(space, "standard")
    loader = RandomBatches(batch, max(space.resolutions))
    print(f"One optimiser step per phase of the `standard` schedule, batch {batch}: median of {steps} steps each, "
          f"the two settings interleaved (the native gradient runs only for {'/'.join(map(str, NATIVE_KERNELS))}-wide "
          "kernels, which the teacher uses everywhere).\n")
    print("| phase | subnets/step | oneDNN gradient | native gradient | step time saved |")
    print("|---|---:|---:|---:|---:|")
    saved = []
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(net, schedule, loader, out, TrainConfig(checkpoint_every=0), show_progress=False)
        net.train()
        batch_data = next(iter(loader))
        for phase in schedule:
            trainer._start_phase(phase)
            times: dict[bool, list[float]] = {False: [], True: []}
            for step in range(steps + 1):
                for native in (False, True) if step % 2 else (True, False):
                    with native_weight_grad(native):
                        start = time.perf_counter()
                        trainer._step(phase, batch_data, phase.lr * 0.01)
                        if step:  # the first round warms up
                            times[native].append(time.perf_counter() - start)
            a, b = statistics.median(times[False]), statistics.median(times[True])
            saved.append(1 - b / a)
            print(f"| {phase.name} | {phase.subnets_per_step} | {a:.2f} s | {b:.2f} s | {1 - b / a:.0%} |")
    print()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="tiny-mbv3")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    print("## Depthwise weight gradient: native core against oneDNN (`benchmarks/depthwise_grad.py`)\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{measured_on()} torch {torch.__version__}, {args.threads} thread(s), channels-last float32; load average "
          f"{load:.2f} at start.\n")
    ratio = kernel_table(args.space, args.batch, args.repeats)
    saved = step_table(args.space, args.batch, args.steps)
    print(f"Goal: a faster CPU training step, towards the `standard` schedule's ≤ 3 h: the largest subnet's depthwise "
          f"weight gradients ran {ratio:.1f}× faster in all, a step of the standard phases {min(saved):.0%}–{max(saved):.0%} "
          "faster.\n")


if __name__ == "__main__":
    main()
