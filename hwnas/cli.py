"""The ``hwnas`` command: verb-noun subcommands over the library (``hwnas lut info``, ``hwnas demo``...)."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from . import __version__
from .space import Arch, get_space, list_spaces


def _read_archs(path: str) -> list[Arch]:
    """One OFA arch dict per non-empty line of a JSONL file (``-`` reads stdin); errors name the line."""
    stream: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8")
    archs = []
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                archs.append(Arch.from_dict(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: {error}") from None
    return archs


def _cmd_lut_import_ofa(args: argparse.Namespace) -> int:
    from .latency import LatencyTable

    extra: dict[str, Any] = {"device": args.device}
    if args.space:
        extra["space_hash"] = get_space(args.space).content_hash
    table = LatencyTable.import_ofa(args.paths, **extra)
    table.save(args.output)
    print(f"wrote {args.output}: {len(table)} entries from {len(table.metadata['protocol']['files'])} file(s)")
    if args.space:
        _print_coverage(table, args.space)
    return 0


def _print_coverage(table: Any, space_name: str) -> None:
    from .latency import LatencyPredictor

    predictor = LatencyPredictor(get_space(space_name), table)
    print(f"serves {space_name} at resolutions {predictor.served_resolutions}")


def _cmd_lut_info(args: argparse.Namespace) -> int:
    from .latency import LatencyTable

    table = LatencyTable.load(args.lut)
    meta = table.metadata
    runtime = meta.get("runtime") or {}
    print(f"{args.lut}: {len(table)} entries")
    print(f"  device      {meta.get('device')}")
    print(f"  runtime     {runtime.get('name')} {runtime.get('version') or ''} "
          f"provider={runtime.get('provider')} threads={runtime.get('threads')}")
    print(f"  precision   {meta.get('precision')}  batch {meta.get('batch')}  units {meta.get('units')}")
    print(f"  created     {meta.get('created_at')} by hwnas {meta.get('hwnas_version')}")
    print(f"  space hash  {meta.get('space_hash')}")
    calibration = meta.get("calibration")
    if calibration:
        print(f"  calibration scale={calibration['scale']:.6g} offset={calibration['offset']:.6g} ms")
    else:
        print("  calibration none (raw sum of op latencies)")
    if args.space:
        _print_coverage(table, args.space)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


def _cmd_lut_predict(args: argparse.Namespace) -> int:
    from .latency import LatencyPredictor, LatencyTable

    space = get_space(args.space)
    predictor = LatencyPredictor(space, LatencyTable.load(args.lut))
    archs = _read_archs(args.archs)
    latencies = predictor.predict(archs) if archs else []
    with open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout) as out:
        for arch, latency in zip(archs, latencies):
            out.write(json.dumps({"latency_ms": float(latency), "r": arch.r, "macs": space.macs(arch)}) + "\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwnas", description="Hardware-aware neural architecture search.")
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    lut = verbs.add_parser("lut", help="latency lookup tables").add_subparsers(dest="lut_verb", required=True)
    imp = lut.add_parser("import-ofa", help="import OFA/ProxylessNAS YAML (or DynamicOFA JSON) tables")
    imp.add_argument("paths", nargs="+", help="table files or directories of NNN_lookup_table.yaml")
    imp.add_argument("-o", "--output", required=True, help="the hwnas LUT (JSON) to write")
    imp.add_argument("--space", choices=list_spaces(), help="record this space's hash and report coverage")
    imp.add_argument("--device", default="unknown", help="device name to record, e.g. 'Samsung Note10'")
    imp.set_defaults(func=_cmd_lut_import_ofa)

    info = lut.add_parser("info", help="describe a LUT")
    info.add_argument("lut")
    info.add_argument("--space", choices=list_spaces(), help="also report which resolutions it serves")
    info.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    info.set_defaults(func=_cmd_lut_info)

    pred = lut.add_parser("predict", help="predict latency for archs (JSONL in, JSONL out, same order)")
    pred.add_argument("lut")
    pred.add_argument("--space", required=True, choices=list_spaces())
    pred.add_argument("--archs", required=True, help="JSONL file of OFA arch dicts, or - for stdin")
    pred.add_argument("-o", "--output", help="write here instead of stdout")
    pred.set_defaults(func=_cmd_lut_predict)

    demo = verbs.add_parser("demo", help="the end-to-end job on the shipped data (offline)")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (ValueError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"hwnas: error: {message}", file=sys.stderr)
        return 2
