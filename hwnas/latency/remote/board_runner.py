#!/usr/bin/env python3
"""hwnas board runner: time every op model of this bundle and write results.json.

Copied into a bundle as ``runner.py`` by ``hwnas profile --target tflite --bundle DIR``. Needs only numpy
and ``ai_edge_litert`` (or ``tflite_runtime``, as on a Raspberry Pi). Run ``python runner.py DIR``;
progress goes to DIR/results.jsonl after every op, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hwnas_litert import LiteRTRunner, runtime_description  # noqa: E402  (shipped beside this file)
from hwnas_protocol import Protocol, measure  # noqa: E402


def device_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "model\t")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"hostname": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def append(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_done(path: str) -> dict:
    """Records already measured; a torn last line (killed mid-write) is dropped."""
    done = {}
    if not os.path.exists(path):
        return done
    with open(path, "rb") as handle:
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    for line in complete.decode("utf-8").splitlines():
        record = json.loads(line)
        done[(record["key"], record["pass"])] = record
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--threads", type=int, help="override the bundle's thread count")
    args = parser.parse_args(argv)
    with open(os.path.join(args.bundle, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    if manifest.get("format") != "hwnas-bundle" or manifest.get("version") != 1:
        raise SystemExit(f"{args.bundle}/manifest.json is not a version-1 hwnas bundle")
    threads = args.threads or manifest["threads"]
    protocol = Protocol(**manifest["protocol"])
    journal = os.path.join(args.bundle, "results.jsonl")
    done = load_done(journal)
    entries = manifest["entries"]
    total = len(entries) * manifest["passes"]
    started = time.time()
    device = device_description()
    count = len(done)
    for pass_index in range(manifest["passes"]):
        order = np.random.default_rng(manifest["seed"] + pass_index).permutation(len(entries))
        for i in order:
            entry = entries[i]
            if (entry["key"], pass_index) in done:
                continue
            with open(os.path.join(args.bundle, entry["file"]), "rb") as handle:
                runner = LiteRTRunner(handle.read(), threads=threads)
            result = measure(runner, protocol)
            runner.close()
            record = {"key": entry["key"], "pass": pass_index, **result.stats(), "unstable": result.unstable,
                      "iqr_ratio": result.iqr_ratio}
            append(journal, record)
            done[(entry["key"], pass_index)] = record
            count += 1
            print(f"[{count}/{total}] {result.mean:.4f} ms  {entry['key']}", flush=True)
    results = {"format": "hwnas-bundle-results", "version": 1, "space_hash": manifest["space_hash"],
               "device": device, "runtime": {**runtime_description(), "threads": threads},
               "protocol": manifest["protocol"], "passes": manifest["passes"],
               "seconds": round(time.time() - started, 1), "records": list(done.values())}
    tmp = os.path.join(args.bundle, "results.json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, os.path.join(args.bundle, "results.json"))
    print(f"wrote {os.path.join(args.bundle, 'results.json')}: {len(done)} measurements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
