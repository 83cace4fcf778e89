"""Subnet extraction and supernet overhead, measured side by side.

1. ``set_active(arch) + extract()`` per subnet (median over random archs) against OFA's own
   ``set_active_subnet + get_active_subnet``, which takes 25–28 ms for ofa-mbv3-w1.2 (goal: ≤ 3 ms).
   The copy floor is the time to clone the extracted subnet's tensors alone: no extraction can
   beat it, since a subnet must hold copies of its weights.
2. Forward time of the supernet running the active subnet against the extracted static subnet
   (same arch, same input, eval mode), at batch 1 and 16.

    PYTHONPATH=. python benchmarks/extract.py [--archs 50] [--resolution 224]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from hwnas import Arch, get_space
from hwnas.nn import OFAMobileNetV3

OFA_EXTRACT_MS = (25.0, 28.0)
GOAL_MS = 3.0


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def clone_ms(tensors: list[torch.Tensor]) -> float:
    """Time to copy ``tensors`` (ms), measured on the second pass so that memory is recycled as in a loop."""
    for _ in range(2):
        start = time.perf_counter()
        copies = [t.clone() for t in tensors]
        elapsed = time.perf_counter() - start
        del copies
    return elapsed * 1e3


def extraction_ms(net: OFAMobileNetV3, archs: list[Arch]) -> tuple[list[float], list[float]]:
    """Per arch: ``set_active + extract`` time and the copy floor of the result (ms)."""
    extract, floor = [], []
    for arch in archs:
        start = time.perf_counter()
        net.set_active(arch)
        subnet = net.extract()
        extract.append((time.perf_counter() - start) * 1e3)
        tensors = list(subnet.state_dict().values())
        del subnet
        floor.append(clone_ms(tensors))
    return extract, floor


def forward_ms(net: OFAMobileNetV3, batch: int, r: int, repeats: int) -> tuple[float, float]:
    """Median forward time (ms) of the supernet's active subnet and of its extraction, interleaved."""
    subnet = net.extract()
    x = torch.randn(batch, 3, r, r)
    supernet_times, subnet_times = [], []
    with torch.no_grad():
        net(x), subnet(x)  # warm-up
        for _ in range(repeats):
            supernet_times.append(seconds(lambda: net(x)) * 1e3)
            subnet_times.append(seconds(lambda: subnet(x)) * 1e3)
    return statistics.median(supernet_times), statistics.median(subnet_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="ofa-mbv3-w1.2")
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5, help="forward repeats per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    space = get_space(args.space)
    torch.manual_seed(args.seed)
    net = OFAMobileNetV3(space).eval()
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs)]
    print("## Subnet extraction and supernet overhead (`benchmarks/extract.py`)\n")
    print(f"{space.name}: {space.num_classes} classes, {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M "
          f"supernet parameters; {args.archs} random archs, mean subnet {np.mean([space.params(a) for a in archs]) / 1e6:.2f} "
          f"M parameters; torch {torch.__version__}. OFA's own set_active_subnet + get_active_subnet takes "
          f"{OFA_EXTRACT_MS[0]:.0f}-{OFA_EXTRACT_MS[1]:.0f} ms here; goal {GOAL_MS:.0f} ms.\n")
    print("| threads | set_active + extract (median) | p10 | p90 | copy floor | vs OFA | vs goal |")
    print("|---:|---:|---:|---:|---:|---:|---:|")

    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        extraction_ms(net, archs)  # warm-up: fills the module-prototype cache
        extract, floor = extraction_ms(net, archs)
        median = statistics.median(extract)
        low, high = (median / ofa for ofa in OFA_EXTRACT_MS)
        print(f"| {threads} | {median:.2f} ms | {np.percentile(extract, 10):.2f} ms | {np.percentile(extract, 90):.2f} ms | "
              f"{statistics.median(floor):.2f} ms | {1 / low:.1f}–{1 / high:.1f}× faster | {median / GOAL_MS:.2f}× the goal |")

    arch = space.sample(np.random.default_rng(args.seed + 1)).to_dict() | {"r": args.resolution}
    net.set_active(arch)
    print(f"\nForward of one arch ({space.macs(arch) / 1e6:.0f} M MACs at r={args.resolution}), eval mode, same input:\n")
    print("| threads | batch | supernet (active subnet) | extracted subnet | supernet / extracted |")
    print("|---:|---:|---:|---:|---:|")
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for batch in (1, 16):
            supernet, subnet = forward_ms(net, batch, args.resolution, args.repeats)
            print(f"| {threads} | {batch} | {supernet:.1f} ms | {subnet:.1f} ms | {supernet / subnet:.2f}× |")
    torch.set_num_threads(default_threads)
    print()


if __name__ == "__main__":
    main()
