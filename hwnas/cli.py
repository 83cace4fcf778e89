"""The ``hwnas`` command: verb-noun subcommands over the library (``hwnas lut info``, ``hwnas demo``...)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .latency.table import PRECISIONS
from .space import Arch, get_space, list_spaces


def _read_archs(path: str) -> list[Arch]:
    """One OFA arch dict per non-empty line of a JSONL file (``-`` reads stdin); errors name the line."""
    stream: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
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
    from .latency import import_ofa_tables

    extra: dict[str, Any] = {"device": args.device}
    if args.space:
        extra["space_hash"] = get_space(args.space).content_hash
    table = import_ofa_tables(args.paths, **extra)
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
    adapted = meta.get("adapted")
    if adapted:
        print(f"  adapted     from {adapted.get('from')} ({adapted.get('from_device')}) with {adapted.get('runs')} "
              f"measured runs, model {adapted.get('model')}")
    calibration = meta.get("calibration")
    if calibration:
        terms = " ".join(f"{k}={calibration[k]:.6g}" for k in ("scale", "offset", "per_op", "per_element", "per_param")
                         if k in calibration)
        print(f"  calibration {calibration.get('model', 'scale+offset')}: {terms}")
        held_out = (calibration.get("validation") or {}).get("holdout_calibrated")
        if held_out:
            print(f"  validated   {held_out['n']} held-out subnets: {held_out['within_5pct']:.1%} within ±5%, "
                  f"{held_out['within_10pct']:.1%} within ±10%, RMSPE {held_out['rmspe_pct']:.2f}%")
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


def _cmd_lut_adapt(args: argparse.Namespace) -> int:
    from .latency import LatencyTable
    from .latency.adapt import adapt, read_runs

    space = get_space(args.space)
    source = LatencyTable.load(args.source)
    runs = read_runs(args.measured, space)
    prior_runs = {Path(path).stem: read_runs(path, space) for path in args.prior or []}
    result = adapt(space, source, runs, prior_runs=prior_runs or None, model=args.model,
                   device=args.device or f"adapted from {source.metadata.get('device')}")
    result.table.save(args.output)
    fit, scalars = result.report["fit"], result.report["scalars"]
    print(f"wrote {args.output}: {len(result.table)} entries, model {result.model} from {len(runs)} runs "
          f"(overhead ×{scalars['overhead']:.4g}, compute ×{scalars['compute']:.4g}, offset {scalars['offset_ms']:+.4g} ms)")
    per_kind = result.report.get("per_kind")
    if per_kind is not None and per_kind["used"]:
        factors = ", ".join(f"{k} ×{v:.3g}" for k, v in per_kind["factors"].items() if v is not None)
        loo = per_kind["loo_rmspe_pct"]
        print(f"  per-kind compute (leave-one-out RMSPE {loo['per_kind']:.2f}% vs {loo['shared']:.2f}% with one): {factors}")
    elif per_kind is not None:
        print(f"  per-kind corrections off: {per_kind['why']}")
    print(f"  on the runs themselves (not held out): RMSPE {fit['rmspe_pct']:.2f}%, {fit['within_10pct']:.0%} within ±10%")
    if result.report["filled_resolutions"]:
        print(f"  resolutions the source does not serve, filled from the nearest served one by MACs: "
              f"{result.report['filled_resolutions']}")
    return 0


def _cmd_lut_probes(args: argparse.Namespace) -> int:
    from .latency.adapt import probe_archs

    for arch in probe_archs(get_space(args.space), args.n, seed=args.seed):
        print(json.dumps(arch.to_dict()))
    return 0


def _parse_ints(text: str | None) -> list[int] | None:
    return None if not text else [int(v) for v in text.replace(",", " ").split()]


def _cmd_profile(args: argparse.Namespace) -> int:
    from .latency.profiler import profile
    from .latency.protocol import Protocol
    from .latency.targets import get_target

    space = get_space(args.space)
    resolutions = _parse_ints(args.resolutions)
    protocol = Protocol.quick() if args.quick else Protocol()
    if args.bundle:
        from .latency.remote.bundle import write_bundle

        path = write_bundle(space, args.bundle, resolutions=resolutions, threads=args.threads, protocol=protocol)
        print(f"wrote {path}: copy the folder to the device, run `python runner.py .` there, then "
              f"`hwnas lut import-results {args.bundle}`")
        return 0
    if args.adb:
        from .latency.remote.adb import profile_over_adb

        table = profile_over_adb(space, args.adb, args.benchmark_model, args.output, resolutions=resolutions,
                                 threads=args.threads)
        print(f"wrote {Path(args.output) / 'lut.json'}: {len(table)} entries measured on {args.adb}")
        return 0
    if not args.output:
        raise ValueError("profile needs -o DIR (or --bundle DIR / --adb SERIAL)")
    target = get_target(args.target, args.threads, precision=args.precision)
    table = profile(space, target, args.output, resolutions=resolutions, protocol=protocol, passes=args.passes,
                    seed=args.seed)
    meta = table.metadata
    speed = meta["speed_reference"]
    print(f"wrote {Path(args.output) / 'lut.json'}: {len(table)} entries in {meta['profile_seconds']:.0f} s; "
          f"{len(speed['unsettled'])} without a window in the machine's fast state after "
          f"{speed['settle_rounds']} more round(s)"
          + ("" if args.validate else f"; next: hwnas lut validate {args.output}"))
    if args.validate:
        from .latency.validate import validate

        report = validate(space, target, args.output, n=args.validate, protocol=protocol, passes=args.passes,
                          seed=args.seed)
        _print_validation(report, args.output)
    return 0


def _cmd_lut_validate(args: argparse.Namespace) -> int:
    from .latency import LatencyTable
    from .latency.protocol import Protocol
    from .latency.targets import get_target
    from .latency.validate import validate

    table = LatencyTable.load(Path(args.dir) / "lut.json")
    meta = table.metadata
    space_name = args.space or meta.get("space")
    target_name = args.target or meta.get("target")
    threads = args.threads or (meta.get("runtime") or {}).get("threads") or 1
    if not space_name or not target_name:
        raise ValueError(f"{args.dir}/lut.json does not name its space/target; pass --space and --target")
    report = validate(get_space(space_name), get_target(target_name, int(threads), precision=table.precision), args.dir,
                      n=args.n,
                      resolutions=_parse_ints(args.resolutions), protocol=Protocol.quick() if args.quick else None,
                      passes=args.passes, seed=args.seed)
    _print_validation(report, args.dir)
    return 0


def _print_validation(report: dict, folder: str) -> None:
    """The held-out table ``lut validate`` writes to validation.json, on the terminal."""
    print(f"{'held-out subnets':<22}{'within ±5%':>12}{'within ±10%':>13}{'RMSPE':>9}{'Kendall τ':>11}")
    for label, key in (("op sum (uncalibrated)", "holdout_uncalibrated"), ("calibrated", "holdout_calibrated")):
        m = report[key]
        print(f"{label:<22}{m['within_5pct']:>12.1%}{m['within_10pct']:>13.1%}{m['rmspe_pct']:>8.2f}%"
              f"{m['kendall_tau']:>11.3f}")
    print(f"calibration model: {report['model']} {report['calibration']}; report: {Path(folder) / 'validation.json'}")
    speed = report["speed_reference"]
    print(f"speed reference: {len(speed['unsettled'])} of {report['n']} subnets without a window in the machine's fast "
          f"state after {speed['settle_rounds']} more round(s)"
          + (f"; the machine's fastest state ×{speed['vs_profile']:.3f} of the profile's" if "vs_profile" in speed else ""))


def _cmd_lut_check(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .latency.check import check_lut

    report = check_lut(args.lut, ops=args.ops, passes=args.passes)
    print(f"{'op':<88}{'LUT ms':>10}{'now ms':>10}{'now/LUT':>9}")
    for row in report["ops"]:
        print(f"{row['key']:<88}{row['lut_ms']:>10.4f}{row['now_ms']:>10.4f}{row['ratio']:>9.3f}")
    print(f"{report['verdict']} [{report['seconds']:.0f} s]")
    if args.json:
        write_json_atomic(Path(args.json), report)
    if args.max_drift is not None and abs(report["ratio"] - 1) * 100 > args.max_drift:
        return 1
    return 0


def _cmd_lut_import_results(args: argparse.Namespace) -> int:
    from .latency.remote.bundle import import_results

    table = import_results(args.dir, output=args.output)
    print(f"wrote {args.output or Path(args.dir) / 'lut.json'}: {len(table)} entries from {table.metadata['device']}")
    return 0


def _epochs(text: str) -> tuple[float, ...]:
    """``--epochs 12,3,1,3,1,16``: one positive number per phase (argparse reports a bad one with its value)."""
    from .train.schedule import check_epochs

    try:
        return check_epochs([float(part) for part in text.split(",")])
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .train.run import TrainOptions, results_table, train_supernet

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or f"runs/train/{args.space}-{args.schedule}"
    options = TrainOptions(
        out=out, data=args.data, data_dir=args.data_dir, space=args.space, schedule=args.schedule, epochs=args.epochs,
        batch_size=args.batch_size, holdout=args.holdout, bn_images=args.bn_images, seed=args.seed,
        device=args.device, resume=args.resume, checkpoint_every=args.checkpoint_every,
        max_steps_per_phase=args.max_steps_per_phase, extra={"argv": sys.argv[1:]},
    )
    results = train_supernet(options)
    if results:  # rank 0
        print(results_table(results))
        print(f"supernet {results['supernet']} ({results['wall_s']:.0f} s); results {Path(out) / 'results.json'}; "
              f"curves {Path(out) / 'training.png'}")
    return 0


def _comma_list(text: str | None) -> list[str]:
    """``"a,b,"`` → ``["a", "b"]`` (empty items dropped)."""
    return [v for v in (text or "").split(",") if v]


def _cmd_search(args: argparse.Namespace) -> int:
    from .search.run import SearchOptions, parse_budgets, results_table, run_search
    from .zoo import resolve_zoo

    luts = _comma_list(args.lut)
    model = resolve_zoo(args.supernet)
    supernet = args.supernet if model is None else str(model.supernet_path)
    predictor = args.predictor
    if predictor is None and model is not None:  # a zoo model: search it with its own predictor
        predictor = str(model.predictor_path)
    out = args.out or f"runs/search/{Path(supernet).parent.name or 'supernet'}-{args.strategy}"
    options = SearchOptions(
        supernet=supernet, luts=luts, budgets_ms=parse_budgets(args.latency_ms, len(luts)), out=out,
        strategy=args.strategy, data_dir=args.data_dir, predictor=predictor, n_archs=args.n_archs,
        sampling=args.sampling, population=args.population, generations=args.generations, max_macs=args.max_macs,
        max_params=args.max_params, measured_accuracies=args.measured_accuracies, use_measured=not args.predictor_only,
        penalty=args.penalty, weight=args.weight, steps=args.steps, measure=args.measure, seed=args.seed,
        precision=args.precision,
        device=args.device, extra={"argv": sys.argv[1:]},
    )
    results = run_search(options)
    if results:
        report = results["accuracy_predictor"].get("val") or {}
        if report:  # a figure is None where too few subnets were held out to compute it
            def shown(key: str, spec: str) -> str:
                return "n/a" if report.get(key) is None else format(report[key], spec)

            print(f"accuracy predictor: held-out Spearman {shown('spearman', '.3f')}, Kendall {shown('kendall', '.3f')}, "
                  f"RMSE {shown('rmse_pts', '.2f')} points ({report.get('n', '?')} subnets)")
        print(results_table(results))
        print(f"{results['strategy']} search {results['search_seconds']:.2f} s; results {Path(out) / 'results.json'}; "
              f"plot {Path(out) / 'pareto.png'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportOptions, export, report_table
    from .zoo import resolve_supernet

    if args.arch:
        name = Path(args.arch).stem
    elif args.budget is not None:
        name = f"{Path(args.from_search).name}-{args.budget:g}ms"
    else:
        name = Path(args.from_search).name
    out = args.out or f"runs/export/{name}"
    report = export(ExportOptions(
        supernet=resolve_supernet(args.supernet) if args.supernet else None, out=out, arch=args.arch,
        from_search=args.from_search, budget=args.budget,
        formats=_comma_list(args.format), int8=args.int8, calib_images=args.calib_images, tflite_int8=args.tflite_int8,
        luts=_comma_list(args.lut),
        data_dir=args.data_dir, verify=not args.no_verify, test_images=args.test_images, measure=not args.no_measure,
        drift_anchors=args.drift_anchors,
        extra={"argv": sys.argv[1:]},
    ))
    print(report_table(report))
    print(f"bundle {out}: run.py, arch.json, labels.json, report.json; "
          f"{'all checks passed' if report['passed'] else 'SOME CHECKS FAILED (see report.json)'}")
    return 0 if report["passed"] else 1


def _cmd_supernet_import_ofa(args: argparse.Namespace) -> int:
    from .nn import save_supernet
    from .nn.ofa_checkpoint import DEFAULT_RESOLUTION, IMAGEFOLDER_SPLIT, import_ofa_supernet, ofa_extra

    net = import_ofa_supernet(args.checkpoint, args.space)
    data = None
    if args.data_dir:  # an ImageFolder with train/ (BN recalibration, validation) and test/ (docs/ofa.md)
        data = {"name": "imagenet", "data_dir": str(Path(args.data_dir).resolve()), **IMAGEFOLDER_SPLIT,
                "bn_images": args.bn_images}
    extra = {**ofa_extra(args.checkpoint, net.num_classes, DEFAULT_RESOLUTION, data), "argv": sys.argv[1:]}
    save_supernet(net, args.out, extra=extra)
    space = net.space
    print(f"imported {args.checkpoint} into {space.name} ({net.num_classes} classes, "
          f"{sum(t.numel() for t in net.state_dict().values()) / 1e6:.2f} M values): {args.out}")
    if data is None:
        print("no --data-dir: search and export will need --data-dir (an ImageFolder with train/ and test/)")
    if args.predictor:
        from .search.ofa_predictor import import_ofa_predictor

        predictor_out = Path(args.out).with_name("accuracy_predictor.safetensors")
        import_ofa_predictor(args.predictor, space).save(predictor_out)
        print(f"imported OFA's accuracy predictor {args.predictor}: {predictor_out} (search --predictor {predictor_out})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import SMOKE, DemoSizes, run_demo

    out = Path(args.out or ("runs/demo-smoke" if args.smoke else "runs/demo-train" if args.train else "runs/demo"))
    return run_demo(out=out, sizes=SMOKE if args.smoke else DemoSizes(), supernet=args.supernet, train=args.train)


def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from .zoo import list_models, load, zoo_root

    names = list_models()
    if not names:
        print(f"no zoo models in {zoo_root()}")
    for name in names:
        meta = load(name, check_hashes=False).metadata
        accuracy = ", ".join(f"{row['name']} {row['test_acc']:.1%}" for row in meta["accuracy"]["test"])
        print(f"{name}: {meta['space']}, {meta['num_classes']} classes; test {accuracy}")
    return 0


def _cmd_zoo_info(args: argparse.Namespace) -> int:
    from .zoo import load

    model = load(args.name)
    if args.json:
        print(json.dumps(model.metadata, indent=2))
    else:
        print((model.folder / "MODEL_CARD.md").read_text(encoding="utf-8"))
    print(f"checked: {model.folder} (every file's SHA-256, the supernet's space and class count)")
    return 0


def _cmd_zoo_build(args: argparse.Namespace) -> int:
    from .zoo.build import BuildOptions, build_entry

    folder = build_entry(BuildOptions(run=args.run, name=args.name, summary=args.summary or "", root=args.root,
                                      data_dir=args.data_dir, subnets=args.subnets, seed=args.seed,
                                      bn_images=args.bn_images, engine=args.engine, commit=args.commit,
                                      reproduce=args.reproduce or "", device=args.device))
    print(f"zoo entry {folder}: zoo.json, MODEL_CARD.md")
    return 0


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

    adp = lut.add_parser("adapt", help="a new device's LUT from a source LUT and a few measured whole subnets")
    adp.add_argument("source", help="any device's LUT of this space (the prior)")
    adp.add_argument("--space", required=True, choices=list_spaces())
    adp.add_argument("--measured", required=True, help='JSONL: {"arch": {OFA dict}, "latency_ms": x} per line')
    adp.add_argument("--prior", action="append", metavar="RUNS.jsonl",
                     help="many measured subnets of another device of the target's family (repeatable): "
                          "learns per-op-group costs the few runs then only rescale")
    adp.add_argument("--model", default="auto", choices=["auto", "scale", "scale+offset", "overhead+compute+offset", "per-kind"])
    adp.add_argument("--device", help="device name to record")
    adp.add_argument("-o", "--output", required=True, help="the adapted LUT (JSON) to write")
    adp.set_defaults(func=_cmd_lut_adapt)

    probes = lut.add_parser("probes", help="the archs to measure for `lut adapt` (JSONL, one arch per line)")
    probes.add_argument("--space", required=True, choices=list_spaces())
    probes.add_argument("--n", type=int, default=10)
    probes.add_argument("--seed", type=int, default=0)
    probes.set_defaults(func=_cmd_lut_probes)

    prof = verbs.add_parser("profile", help="measure every op of a search space on a runtime -> LUT")
    prof.add_argument("--target", default="ort-cpu", help="ort-cpu | tflite | torch-cuda")
    prof.add_argument("--space", required=True, choices=list_spaces())
    prof.add_argument("--resolutions", help="comma-separated subset of the space's resolutions (default: all)")
    prof.add_argument("--threads", type=int, default=1, help="runtime threads, pinned (default 1)")
    prof.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                      help="int8: every op quantised as export writes int8 files (ort-cpu QDQ, tflite full integer)")
    prof.add_argument("--passes", type=int, default=8, help="interleaved timing windows per op (default 8)")
    prof.add_argument("--seed", type=int, default=0)
    prof.add_argument("--quick", action="store_true", help="few runs per op: a smoke test, not a shipped LUT")
    prof.add_argument("--validate", type=int, metavar="N",
                      help="then validate on N whole subnets, as `hwnas lut validate DIR --n N` (one command)")
    prof.add_argument("-o", "--output", help="folder for lut.json, its journal and validation files")
    prof.add_argument("--bundle", help="instead of measuring here, write op models + runner for a remote board")
    prof.add_argument("--adb", metavar="SERIAL", help="measure on an Android phone with benchmark_model over adb")
    prof.add_argument("--benchmark-model", default="benchmark_model", help="path of the benchmark_model binary")
    prof.set_defaults(func=_cmd_profile)

    val = lut.add_parser("validate", help="measure subnets from smallest to largest end to end, fit and store the calibration")
    val.add_argument("dir", help="a profile folder holding lut.json")
    val.add_argument("--n", type=int, default=120, help="subnets to measure, half fit and half held out (default 120)")
    val.add_argument("--space", choices=list_spaces(), help="default: the space recorded in the LUT")
    val.add_argument("--target", help="default: the target recorded in the LUT")
    val.add_argument("--threads", type=int, help="default: the threads recorded in the LUT")
    val.add_argument("--resolutions", help="comma-separated (default: all the LUT serves)")
    val.add_argument("--passes", type=int, default=8, help="interleaved timing windows per subnet (default 8)")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--quick", action="store_true", help="few runs per subnet (smoke test)")
    val.set_defaults(func=_cmd_lut_validate)

    chk = lut.add_parser("check", help="does this machine run as fast as when the LUT was profiled? (seconds)")
    chk.add_argument("lut", help="a lut.json profiled on this machine's runtime")
    chk.add_argument("--ops", type=int, default=6, help="LUT ops to re-time, smallest to largest (default 6)")
    chk.add_argument("--passes", type=int, default=5, help="interleaved windows per op (default 5)")
    chk.add_argument("--json", help="also write the report here")
    chk.add_argument("--max-drift", type=float, metavar="PCT",
                     help="exit 1 when the machine runs more than PCT%% faster or slower than the LUT")
    chk.set_defaults(func=_cmd_lut_check)

    res = lut.add_parser("import-results", help="turn a remote bundle's results.json into a LUT")
    res.add_argument("dir", help="the bundle folder, with results.json written by runner.py")
    res.add_argument("-o", "--output", help="default: DIR/lut.json")
    res.set_defaults(func=_cmd_lut_import_results)

    train = verbs.add_parser("train", help="train a supernet by progressive shrinking (torchrun for several processes)")
    train.add_argument("--data", default="cifar10", help="dataset name: <name>_{train,test}.npz in --data-dir, "
                       "CIFAR-10 python batches, or an ImageFolder with train/ and test/ (default cifar10)")
    train.add_argument("--data-dir", help="folder holding the dataset (default: the CIFAR-10 subset shipped with hwnas)")
    train.add_argument("--space", default="tiny-mbv3", choices=list_spaces())
    train.add_argument("--schedule", default="quick", choices=["quick", "standard"])
    train.add_argument("--epochs", type=_epochs, help="epochs of the six phases, comma-separated "
                       "(teacher,kernel,depth-1,depth-2,expand-1,expand-2), replacing the schedule's")
    train.add_argument("--out", help="run folder (default runs/train/SPACE-SCHEDULE)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--batch-size", type=int, default=128, help="global batch, split over torchrun ranks (default 128)")
    train.add_argument("--holdout", type=float, default=0.1, help="fraction of training images held out (default 0.1)")
    train.add_argument("--bn-images", type=int, default=2000, help="holdout images for BN recalibration (default 2000)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--threads", type=int, help="torch intra-op threads per process (default: torch's choice)")
    train.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    train.add_argument("--max-steps-per-phase", type=int, help="cap every phase (smoke runs)")
    train.set_defaults(func=_cmd_train)

    search = verbs.add_parser("search", help="find the most accurate subnet per latency budget (evolution or gradient)")
    search.add_argument("--supernet", required=True, help="a supernet file written by hwnas train, or a zoo model's name")
    search.add_argument("--lut", required=True, help="LUT file(s), comma-separated: one per device")
    search.add_argument("--latency-ms", required=True,
                        help="budgets per LUT, ',' between budgets and ';' between LUTs: '5,8,12' or '5,8;20,30' "
                             "(the i-th budget of every LUT forms one search); an empty group only reports that device")
    search.add_argument("--strategy", default="evolution", choices=["evolution", "gradient"])
    search.add_argument("--out", help="run folder (default runs/search/<supernet folder>-<strategy>)")
    search.add_argument("--data-dir", help="where the training data is now (default: the folder the supernet recorded)")
    search.add_argument("--predictor", help="reuse this accuracy predictor instead of measuring a dataset")
    search.add_argument("--measured-accuracies",
                        help="JSONL of measured {arch, accuracy}: these archs are ranked by their measurement, not the "
                             "predictor (default: the accuracy_dataset.jsonl beside the predictor, as a zoo model ships)")
    search.add_argument("--predictor-only", action="store_true",
                        help="rank every arch by the predictor, ignoring measured accuracies")
    search.add_argument("--n-archs", type=int, default=500, help="subnets measured for the accuracy predictor (500)")
    search.add_argument("--sampling", default="stratified-macs", choices=["stratified-macs", "uniform"],
                        help="how those subnets are drawn: evenly over log-MACs (default) or uniformly per choice")
    search.add_argument("--population", type=int, default=100)
    search.add_argument("--generations", type=int, default=500)
    search.add_argument("--max-macs", type=float, help="also limit MACs (a count, e.g. 2e7)")
    search.add_argument("--max-params", type=float, help="also limit parameters (a count)")
    search.add_argument("--penalty", default="abs", choices=["abs", "hinge", "add", "mul"],
                        help="gradient: latency penalty (abs: the budget is a target; hinge: only above it costs)")
    search.add_argument("--weight", type=float, default=5.0, help="gradient: penalty weight λ (default 5)")
    search.add_argument("--steps", type=int, default=300, help="gradient: steps (default 300)")
    search.add_argument("--measure", action="store_true",
                        help="re-measure the found archs end to end here, on each LUT's own runtime and threads")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="the deployed model's precision: every --lut must price it (int8: `profile --precision int8`)")
    search.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    search.set_defaults(func=_cmd_search)

    exp = verbs.add_parser("export", help="extract a subnet, write ONNX/TFLite (fp32, int8), verify, bundle for a board")
    exp.add_argument("--supernet", help="a supernet file or a zoo model's name (default with --from-search: the search's)")
    pick = exp.add_mutually_exclusive_group(required=True)
    pick.add_argument("--arch", help="a JSON file with {ks, e, d, r} (or {'arch': {...}})")
    pick.add_argument("--from-search", help="a hwnas search output folder (its results.json)")
    exp.add_argument("--budget", type=float, help="with --from-search: which budget's arch (ms)")
    exp.add_argument("--format", default="onnx,tflite", help="comma-separated: onnx, tflite (default both)")
    exp.add_argument("--int8", action="store_true", help="also write int8 files, calibrated on training images")
    exp.add_argument("--calib-images", type=int, default=256, help="int8 calibration training images (default 256)")
    exp.add_argument("--tflite-int8", default="dynamic", choices=["dynamic", "static"],
                     help="int8 TFLite: dynamic range (int8 weights; default, best on CPUs) or static full integer (NPUs)")
    exp.add_argument("--lut", help="LUT(s) pricing the subnet, comma-separated (default: the search's, else the "
                                   "shipped ort-cpu/tflite profiles of the space)")
    exp.add_argument("--data-dir", help="where the training data is now (default: the folder the supernet recorded)")
    exp.add_argument("--test-images", type=int, help="test images for accuracy (default: the whole test set)")
    exp.add_argument("--no-verify", action="store_true", help="skip the checks against PyTorch")
    exp.add_argument("--no-measure", action="store_true", help="skip measuring latency here")
    exp.add_argument("--drift-anchors", type=int, default=4,
                     help="LUT validation subnets re-timed beside the files to measure the machine's drift (0: none)")
    exp.add_argument("--out", help="bundle folder (default runs/export/<arch or search>)")
    exp.set_defaults(func=_cmd_export)

    zoo = verbs.add_parser("zoo", help="pretrained supernets shipped with hwnas").add_subparsers(dest="zoo_verb",
                                                                                                 required=True)
    zoo.add_parser("list", help="the zoo's models and their test accuracies").set_defaults(func=_cmd_zoo_list)
    zinfo = zoo.add_parser("info", help="check a zoo model (hashes, space, classes) and print its model card")
    zinfo.add_argument("name")
    zinfo.add_argument("--json", action="store_true", help="print zoo.json instead of the card")
    zinfo.set_defaults(func=_cmd_zoo_info)
    zbuild = zoo.add_parser("build", help="make a zoo entry from a finished hwnas train run (torchrun for several "
                                          "processes): measures the predictor's subnets and the card's figures")
    zbuild.add_argument("--from-run", dest="run", required=True, help="the hwnas train output folder")
    zbuild.add_argument("--name", required=True, help="the entry's name, e.g. tiny-mbv3-cifar10")
    zbuild.add_argument("--summary", help="one line for the model card")
    zbuild.add_argument("--root", help="zoo folder (default $HWNAS_ZOO or the repository's zoo/)")
    zbuild.add_argument("--data-dir", help="where the run's training data is now (default: the folder it recorded)")
    zbuild.add_argument("--subnets", type=int, default=1250, help="subnets measured for the predictor (1250)")
    zbuild.add_argument("--bn-images", type=int, default=2000, help="training images recalibrating BN (2000)")
    zbuild.add_argument("--engine", default="onnxruntime", choices=["onnxruntime", "torch"],
                        help="what counts top-1 (default onnxruntime: the exported file, faster on CPUs)")
    zbuild.add_argument("--commit", help="the hwnas commit that trained the run (default: RUN/COMMIT.txt)")
    zbuild.add_argument("--reproduce", help="the commands that remake the run and the entry, for the card")
    zbuild.add_argument("--seed", type=int, default=0)
    zbuild.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    zbuild.set_defaults(func=_cmd_zoo_build)

    supernet = verbs.add_parser("supernet", help="supernet files").add_subparsers(dest="supernet_verb", required=True)
    imp_ofa = supernet.add_parser("import-ofa", help="OFA's pretrained MobileNetV3 supernet checkpoint -> an hwnas "
                                                      "supernet file that search and export take")
    imp_ofa.add_argument("checkpoint", help="OFA's checkpoint, e.g. ofa_mbv3_d234_e346_k357_w1.2 (read with "
                                            "torch.load(weights_only=True))")
    imp_ofa.add_argument("--space", required=True, choices=["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"],
                         help="the width the checkpoint was trained with (w1.0 or w1.2)")
    imp_ofa.add_argument("-o", "--out", required=True, help="the hwnas supernet file to write (.safetensors)")
    imp_ofa.add_argument("--predictor", help="also import OFA's accuracy predictor checkpoint, written as "
                                             "accuracy_predictor.safetensors beside --out")
    imp_ofa.add_argument("--data-dir", help="record an ImageFolder (train/, test/) to recalibrate BN and evaluate on")
    imp_ofa.add_argument("--bn-images", type=int, default=2000, help="images of train/ that recalibrate BN (2000)")
    imp_ofa.set_defaults(func=_cmd_supernet_import_ofa)

    demo = verbs.add_parser("demo", help="the end-to-end job on the shipped data (offline)")
    demo.add_argument("--out", help="output folder (default runs/demo, or runs/demo-smoke with --smoke)")
    demo.add_argument("--supernet", help="a zoo name or supernet file to start from (default: the zoo's "
                      "tiny-mbv3-cifar10)")
    demo.add_argument("--train", action="store_true",
                      help="train the supernet now instead (quick schedule on the shipped 5,000 images, ~5 min)")
    demo.add_argument("--smoke", action="store_true",
                      help="every stage on tiny sizes (about a minute; numbers meaningless): checks an install")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"hwnas: error: {message}", file=sys.stderr)
        return 2
