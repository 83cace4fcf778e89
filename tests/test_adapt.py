"""Few-shot LUT adaptation: synthetic devices made from known perturbations of a random source LUT."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import SHARED, random_table

import hwnas
from hwnas.cli import main
from hwnas.latency import LatencyPredictor, LatencyTable
from hwnas.latency import adapt as A
from hwnas.stats import spearman_rho

SPACE = hwnas.get_space("tiny-mbv3")


@pytest.fixture(scope="module")
def source() -> LatencyTable:
    return random_table(SPACE, seed=3)


@pytest.fixture(scope="module")
def layout(source) -> A.Layout:
    return A.Layout.build(SPACE, source)


def device(layout: A.Layout, seed: int, scale: float, overhead: float, noise: float = 0.0):
    """A synthetic device: per-group distortions of the source shared by the family (seed 0), a device scale
    and per-op overhead, multiplicative noise. Returns latency(archs)."""
    family = np.random.default_rng(0)
    per_group = family.uniform(0.5, 2.0, len(layout.groups))
    launch = family.uniform(0.5, 1.5, len(layout.groups))
    rng = np.random.default_rng(seed)

    def latency(archs):
        counts, sums = layout.features(archs)
        clean = scale * sums @ per_group + overhead * counts @ launch + 0.1
        return clean * (1 + noise * rng.standard_normal(len(clean)))
    return latency


def runs_of(archs, latency) -> list[A.Run]:
    return [A.Run(a, float(v)) for a, v in zip(archs, latency)]


def sample(n: int, seed: int) -> list[hwnas.Arch]:
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def test_plain_adaptation_recovers_scale_and_overhead_exactly(source, layout, tmp_path):
    truth = lambda archs: 0.7 * layout.features(archs)[1].sum(1) + 0.05 * layout.features(archs)[0].sum(1) + 0.2  # noqa: E731
    probes = A.probe_archs(SPACE, 10)
    result = A.adapt(SPACE, source, runs_of(probes, truth(probes)), device="synthetic-target")
    assert result.model == "per-kind" and not result.report["per_kind"]["used"]  # one β predicts it exactly
    assert result.scalars.compute == pytest.approx(0.7, rel=1e-6)
    assert result.scalars.overhead == pytest.approx(0.05, rel=1e-6)
    assert result.scalars.offset == pytest.approx(0.2, rel=1e-5)
    # the same LUT format: saved, loaded and answered by the native predictor like a measured one
    path = tmp_path / "adapted.json"
    result.table.save(path)
    loaded = LatencyTable.load(path)
    meta = loaded.metadata
    assert meta["device"] == "synthetic-target" and meta["adapted"]["runs"] == 10
    assert meta["adapted"]["model"] == "per-kind" and "fit" in meta["adapted"]
    others = sample(200, 1)
    predicted = LatencyPredictor(SPACE, loaded).predict(others)
    np.testing.assert_allclose(predicted, truth(others), rtol=1e-6)
    assert LatencyPredictor(SPACE, loaded).served_resolutions == list(SPACE.resolutions)


def test_family_prior_beats_plain_on_a_distorted_device(source, layout):
    prior_runs = {f"dev{i}": runs_of(a, device(layout, i, s, o, noise=0.02)(a))
                  for i, (s, o) in enumerate([(1.0, 0.2), (0.5, 0.4)], 1) for a in [sample(1500, 10 + i)]}
    target = device(layout, 9, 0.8, 0.3, noise=0.01)
    probes = A.probe_archs(SPACE, 10)
    others = sample(500, 2)
    measured = target(others)
    with_prior = A.adapt(SPACE, source, runs_of(probes, target(probes)), prior_runs=prior_runs, layout=layout)
    plain = A.adapt(SPACE, source, runs_of(probes, target(probes)), layout=layout)
    assert with_prior.model == "scale+offset"
    assert with_prior.report["prior"]["kind"] == "family prior"
    err_prior = LatencyPredictor(SPACE, with_prior.table).predict(others) / measured - 1
    err_plain = LatencyPredictor(SPACE, plain.table).predict(others) / measured - 1
    assert np.mean(np.abs(err_prior) <= 0.05) >= 0.95
    assert spearman_rho(LatencyPredictor(SPACE, with_prior.table).predict(others), measured) >= 0.98
    assert np.sqrt(np.mean(err_prior**2)) < 0.5 * np.sqrt(np.mean(err_plain**2))


def kind_distorted(layout: A.Layout, factors: dict[str, float], noise: float, seed: int):
    """A device whose compute differs from the source by kind (e.g. 7×7 blocks ×3), plus a per-op overhead."""
    beta = np.array([factors.get(layout.kinds[k], 1.0) for k in layout.group_kind])
    rng = np.random.default_rng(seed)

    def latency(archs):
        counts, sums = layout.features(archs)
        clean = sums @ beta + 0.02 * counts.sum(1) + 0.1
        return clean * (1 + noise * rng.standard_normal(len(clean)))
    return latency


def test_per_kind_recovers_kind_factors_and_beats_one_scale(source, layout):
    factors = {"k7-relu": 3.0, "k7-h_swish": 1.8, "k3-h_swish": 0.8}
    target = kind_distorted(layout, factors, noise=0.005, seed=5)
    probes = A.probe_archs(SPACE, 10)
    runs = runs_of(probes, target(probes))
    per_kind = A.adapt(SPACE, source, runs, layout=layout)
    shared = A.adapt(SPACE, source, runs, layout=layout, model="overhead+compute+offset")
    report = per_kind.report["per_kind"]
    assert per_kind.model == "per-kind" and report["used"], report
    assert report["loo_rmspe_pct"]["per_kind"] <= 0.8 * report["loo_rmspe_pct"]["shared"]
    beta = per_kind.scalars.kinds
    # ten runs, seven kinds, and β trades off against the per-op overhead: the factors are approximate,
    # the big one is not
    assert max(beta, key=beta.__getitem__) == "k7-relu" and beta["k7-relu"] > 2 * beta["k3-relu"]
    others = sample(400, 3)
    measured = target(others)
    err = {name: LatencyPredictor(SPACE, r.table).predict(others) / measured - 1
           for name, r in (("per-kind", per_kind), ("shared", shared))}
    assert np.sqrt(np.mean(err["per-kind"] ** 2)) < 0.5 * np.sqrt(np.mean(err["shared"] ** 2))
    assert np.mean(np.abs(err["per-kind"]) <= 0.10) >= 0.95


def test_per_kind_stays_off_when_the_runs_do_not_support_it(source, layout):
    plain = kind_distorted(layout, {}, noise=0.05, seed=6)  # one scale, noisy runs: corrections would fit noise
    probes = A.probe_archs(SPACE, 10)
    result = A.adapt(SPACE, source, runs_of(probes, plain(probes)), layout=layout)
    assert not result.report["per_kind"]["used"] and "leave-one-out" in result.report["per_kind"]["why"]
    assert result.scalars.kinds == {}
    few = A.adapt(SPACE, source, runs_of(probes[:5], plain(probes[:5])), layout=layout)
    assert not few.report["per_kind"]["used"] and "need ≥ 6" in few.report["per_kind"]["why"]


def test_prior_needs_many_runs_per_device(layout):
    few = runs_of(sample(20, 4), np.ones(20))
    with pytest.raises(ValueError, match="prior device 'x': 20 runs"):
        A.fit_prior(layout, {"x": few})


def test_unserved_resolution_is_filled_by_macs(source):
    partial = LatencyTable.loads(source.dumps())
    layout_full = SPACE.lut_layout([40])
    needed_at_40 = {k for ks in layout_full["fixed_keys"] for k in ks} | set(layout_full["block_keys"])
    others = SPACE.lut_layout([24, 32])
    needed_elsewhere = {k for ks in others["fixed_keys"] for k in ks} | set(others["block_keys"])
    for key in needed_at_40 - needed_elsewhere:
        partial.remove(key)
    layout = A.Layout.build(SPACE, partial)
    assert layout.filled == [40] and layout.served == [24, 32]
    sigs = {s.key: s for s in SPACE.all_signatures()}
    group_at_32 = {A.op_group(sigs[k]): (v, sigs[k]) for (r, k), v in layout.keys.items() if r == 32}
    for (r, key), value in layout.keys.items():
        if r == 40 and key in needed_at_40 - needed_elsewhere:
            v32, s32 = group_at_32[A.op_group(sigs[key])]
            assert value == pytest.approx(v32 * (sigs[key].macs or sigs[key].io_elements) / (s32.macs or s32.io_elements))
    archs = A.probe_archs(SPACE, 8)
    result = A.adapt(SPACE, partial, runs_of(archs, np.linspace(1, 3, 8)), layout=layout)
    assert result.report["filled_resolutions"] == [40]
    assert 40 in LatencyPredictor(SPACE, result.table).served_resolutions


def test_probes_spread_and_are_deterministic():
    probes = A.probe_archs(SPACE, 10)
    assert len(probes) == 10 and len({p.to_json() for p in probes}) == 10
    assert probes == A.probe_archs(SPACE, 10)
    assert sum(probes[0].d) == SPACE.num_stages * min(SPACE.depth) and probes[0].r == min(SPACE.resolutions)
    assert sum(probes[1].d) == SPACE.num_stages * max(SPACE.depth) and probes[1].r == max(SPACE.resolutions)
    assert {p.r for p in probes} == set(SPACE.resolutions)
    pool = sample(30, 5)
    assert all(p in pool for p in A.probe_archs(SPACE, 5, candidates=pool))
    with pytest.raises(ValueError, match="n=0"):
        A.probe_archs(SPACE, 0)


def write_runs(path, archs, latencies) -> None:
    path.write_text("".join(json.dumps({"arch": a.to_dict(), "latency_ms": v}) + "\n" for a, v in zip(archs, latencies)))


@pytest.mark.parametrize("bad, message", [
    ('{"arch": {"ks": [4], "e": [3], "d": [2], "r": 32}, "latency_ms": 1.0}', r"runs.jsonl:3: arch is not in space"),
    ("NaN", r"runs.jsonl:3: latency_ms=nan must be a finite number"),
    ("-1.5", r"runs.jsonl:3: latency_ms=-1.5 must be a finite number"),
    ('"fast"', r"runs.jsonl:3: latency_ms='fast'"),
    ("not json", r"runs.jsonl:3: not JSON"),
    ('{"latency_ms": 1.0}', r"runs.jsonl:3: expected"),
])
def test_bad_runs_name_the_line(tmp_path, bad, message):
    archs = sample(2, 6)
    path = tmp_path / "runs.jsonl"
    write_runs(path, archs, [1.0, 2.0])
    if bad.startswith("{") or bad == "not json":
        line = bad
    else:
        line = json.dumps({"arch": archs[0].to_dict(), "latency_ms": 0.0}).replace("0.0}", bad + "}")
    with open(path, "a") as f:
        f.write(line + "\n")
    with pytest.raises(ValueError, match=message):
        A.read_runs(path, SPACE)


def test_too_few_runs_names_count_and_line(source, tmp_path):
    path = tmp_path / "runs.jsonl"
    write_runs(path, sample(3, 7), [1.0, 2.0, 3.0])
    runs = A.read_runs(path, SPACE)
    with pytest.raises(ValueError, match=r"3 measured run\(s\) \(the last is .*runs.jsonl:3\).*needs at least 4"):
        A.adapt(SPACE, source, runs)
    assert A.adapt(SPACE, source, runs, model="scale+offset").model == "scale+offset"
    with pytest.raises(ValueError, match="model='bogus'"):
        A.adapt(SPACE, source, runs, model="bogus")


def test_entries_stay_nonnegative_when_a_term_fits_negative(source, layout):
    archs = A.probe_archs(SPACE, 10)
    counts, sums = layout.features(archs)
    latency = 2.0 * sums.sum(1) - 0.01 * counts.sum(1) + 5  # a negative per-op overhead
    result = A.adapt(SPACE, source, runs_of(archs, latency), layout=layout)
    assert result.scalars.overhead >= 0 and result.scalars.compute > 0
    assert all(result.table.mean(k) >= 0 for k in result.table.keys())


def test_cli_probes_and_adapt(source, tmp_path, capsys):
    lut = tmp_path / "source.json"
    source.save(lut)
    assert main(["lut", "probes", "--space", "tiny-mbv3", "--n", "6"]) == 0
    probes = [hwnas.Arch.from_dict(json.loads(line)) for line in capsys.readouterr().out.splitlines()]
    assert len(probes) == 6
    runs = tmp_path / "runs.jsonl"
    write_runs(runs, probes, [float(v) for v in np.linspace(0.5, 4, 6)])
    out = tmp_path / "target.json"
    assert main(["lut", "adapt", str(lut), "--space", "tiny-mbv3", "--measured", str(runs), "-o", str(out)]) == 0
    assert "model per-kind from 6 runs" in capsys.readouterr().out
    assert main(["lut", "info", str(out)]) == 0
    assert "adapted     from" in capsys.readouterr().out
    write_runs(runs, probes[:2], [1.0, math.inf])
    assert main(["lut", "adapt", str(lut), "--space", "tiny-mbv3", "--measured", str(runs), "-o", str(out)]) == 2
    assert "runs.jsonl:2: latency_ms=inf" in capsys.readouterr().err


HELP = SHARED / "external" / "help_latency" / "ofa"


@pytest.mark.skipif(not (HELP / "ofa_archs.pt").is_file(), reason=f"HELP's OFA data not found at {HELP}")
def test_help_titan_rtx_batch64_from_ten_probes():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _help_data as help_data

    space = hwnas.get_space(help_data.SPACE)
    source = LatencyTable.load(Path(__file__).resolve().parents[1] / "device_profiles/note10-ofa-mbv3-w1.2/lut.json")
    archs = [hwnas.Arch.from_dict(a) for a in help_data.archs()]
    prior = {d: runs_of(archs[:2000], help_data.latencies(d, 64)[:2000]) for d in ("2080ti", "titan_xp")}
    y = help_data.latencies("titan_rtx", 64)
    probes = A.probe_archs(space, 10, candidates=archs[2000:3000])
    index = {a: i for i, a in enumerate(archs)}
    picked = [index[a] for a in probes]
    result = A.adapt(space, source, runs_of(probes, y[picked]), prior_runs=prior)
    held = np.setdiff1d(np.arange(3000, 5000), picked)
    predicted = LatencyPredictor(space, result.table).predict([archs[i] for i in held])
    assert spearman_rho(predicted, y[held]) >= 0.98
    assert np.mean(np.abs(predicted / y[held] - 1) <= 0.10) >= 0.95
