"""LUT query speed: hwnas's native predictor vs OFA's way (build each op key, dict lookup, sum), side by side.

Run: ``python benchmarks/lut_query.py`` (uses OFA's real Note10 tables from ../shared when present,
else a synthetic table with the same keys). Prints a markdown section for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hwnas
from hwnas.latency import LatencyPredictor, LatencyTable, import_ofa_tables
from hwnas.space import get_space, make_divisible

NOTE10 = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "ofa_luts" / "note10"


def repr_shape(shape: list[int]) -> str:
    return "x".join(str(v) for v in shape)


def ofa_query(table: dict, l_type: str, input_shape: list[int], output_shape: list[int], mid: int | None = None,
              ks: int | None = None, stride: int | None = None, id_skip: int | None = None, se: int | None = None,
              h_swish: int | None = None) -> float:
    """OFA's MBv3LatencyTable.query: assemble the key from its parts, look it up, return the mean."""
    infos = [l_type, "input:%s" % repr_shape(input_shape), "output:%s" % repr_shape(output_shape)]
    if l_type == "expanded_conv":
        infos += ["expand:%d" % mid, "kernel:%d" % ks, "stride:%d" % stride, "idskip:%d" % id_skip,
                  "se:%d" % se, "hs:%d" % h_swish]
    return table["-".join(infos)]["mean"]


def ofa_style_predict(spec: dict, lut: dict[int, dict]) -> float:
    """What OFA's predict_network_latency_given_spec does: walk the blocks, query each op, add."""
    r = spec["r"]
    table = lut[r]
    f = (r + 1) // 2
    total = ofa_query(table, "Conv", [r, r, 3], [f, f, 24])
    total += ofa_query(table, "expanded_conv", [f, f, 24], [f, f, 24], mid=24, ks=3, stride=1, id_skip=1, se=0,
                       h_swish=0)
    c_in = 24
    for i, (stride, width, hs, se) in enumerate(zip([2, 2, 2, 1, 2], [32, 48, 96, 136, 192], [0, 0, 1, 1, 1],
                                                    [0, 1, 0, 1, 1])):
        for j in range(spec["d"][i]):
            s = stride if j == 0 else 1
            out = int((f - 1) / s + 1)
            mid = make_divisible(round(c_in * spec["e"][i * 4 + j]), 8)
            total += ofa_query(table, "expanded_conv", [f, f, c_in], [out, out, width], mid=mid,
                               ks=spec["ks"][i * 4 + j], stride=s, id_skip=int(s == 1 and c_in == width), se=se,
                               h_swish=hs)
            f, c_in = out, width
    total += ofa_query(table, "Conv_1", [f, f, 192], [f, f, 1152])
    total += ofa_query(table, "AvgPool2D", [f, f, 1152], [1, 1, 1152])
    total += ofa_query(table, "Conv_2", [1, 1, 1152], [1, 1, 1536])
    total += ofa_query(table, "Logits", [1, 1, 1536], [1000])
    return total


def load_tables(space):
    """(hwnas table, OFA-style dict per resolution, source description)."""
    if NOTE10.is_dir():
        import yaml

        files = sorted(NOTE10.glob("*_lookup_table.yaml"))
        table = import_ofa_tables(files, device="Samsung Note10")
        per_r = {int(p.name.split("_")[0]): yaml.safe_load(p.read_text()) for p in files}
        return table, per_r, "OFA Samsung Note10 tables (17 resolutions, real)"
    rng = np.random.default_rng(0)
    table = LatencyTable()
    per_r: dict[int, dict] = {}
    for r in range(160, 225, 4):
        entries = {sig.key: {"mean": float(rng.uniform(0.01, 2))} for sig in space.all_signatures([r])}
        per_r[r] = entries
        for key, value in entries.items():
            table.set(f"{key}@r{r}", value["mean"])
    return table, per_r, "synthetic table with Note10's keys (../shared not found)"


def best_rate(fn, items: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items / best


def main() -> None:
    torch.set_num_threads(1)
    space = get_space("ofa-mbv3-w1.2")
    table, per_r, source = load_tables(space)
    predictor = LatencyPredictor(space, table)
    rng = np.random.default_rng(0)
    codes = space.sample_codes(100_000, rng)
    served = [space.resolutions.index(r) for r in predictor.served_resolutions]
    codes[:, -1] = rng.choice(served, len(codes))
    specs = [a.to_dict() for a in space.decode(codes[:5_000])]

    baseline_values = np.array([ofa_style_predict(s, per_r) for s in specs])
    assert np.allclose(baseline_values, predictor.predict(codes[:5_000]), rtol=1e-9), "baseline disagrees"
    baseline = best_rate(lambda: [ofa_style_predict(s, per_r) for s in specs], len(specs), 3)
    native_1 = best_rate(lambda: predictor.predict(codes, threads=1), len(codes), 20)
    native_all = best_rate(lambda: predictor.predict(codes, threads=0), len(codes), 20)
    from_dicts = best_rate(lambda: predictor.predict(specs), len(specs), 3)

    n = 256
    logits = {g: torch.randn(n, *s, dtype=torch.float64, requires_grad=True) for g, s in
              (("ks", (20, 3)), ("e", (20, 3)), ("d", (5, 3)), ("r", (len(space.resolutions),)))}
    mask = torch.from_numpy(predictor.resolution_mask)

    def expected_and_backward() -> None:
        probs = {g: t.softmax(-1) for g, t in logits.items()}
        probs["r"] = logits["r"].masked_fill(~mask, float("-inf")).softmax(-1)
        hwnas.expected_latency(predictor, probs).sum().backward()

    expected_rate = best_rate(expected_and_backward, 1, 20)

    print("## LUT query (`benchmarks/lut_query.py`)\n")
    print(f"Space `ofa-mbv3-w1.2`, {source}; 100k random subnets per native batch; baseline on 5k subnets.")
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start of run.\n")
    print("| method | subnets/s | vs OFA-style Python |")
    print("|---|---:|---:|")
    print(f"| OFA-style Python (OFA's query(): key assembled per op, dict lookup, sum) | {baseline:,.0f} | 1× |")
    print(f"| hwnas `predict`, int32 codes, 1 thread | {native_1:,.0f} | {native_1 / baseline:,.0f}× |")
    print(f"| hwnas `predict`, int32 codes, all cores | {native_all:,.0f} | {native_all / baseline:,.0f}× |")
    print(f"| hwnas `predict` from OFA dicts (encode in Python + predict) | {from_dicts:,.0f} | "
          f"{from_dicts / baseline:,.1f}× |")
    print(f"\n`expected_latency` + backward for {n} distributions: {1e3 / expected_rate:.2f} ms per call.")
    goal = native_1 >= 20e6 and native_1 / baseline >= 1000
    print(f"\nGoal (≥ 20M subnets/s and ≥ 1000× on 1 thread): {'met' if goal else 'NOT met'}.\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
