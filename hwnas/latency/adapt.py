"""Few-shot LUT adaptation: a new device's LUT from a source LUT and a handful of whole-model timings.

The model (chosen by measurement, see docs/adapt.md): every op ``o`` costs

    value(o) = α · overhead[g(o)] + β[k(o)] · compute[g(o)] · source(o)

and a subnet ``offset γ + Σ value(o)``. ``g(o)`` is the op's *group* — its key without the spatial sizes
(same kind, channels, kernel, stride, SE, activation at every resolution) — ``source(o)`` the source LUT's
entry. ``overhead``/``compute`` are a *family prior*: per-group fixed costs (kernel launches, dispatch) and
per-group corrections of the source's costs, fitted on many measured subnets of other devices of the
target's family when those are given (:func:`fit_prior`), else the plain ``1`` and ``1`` (a per-op
overhead plus a scaled source). The few runs of the new device then fit only the scalars α, β, γ
(:func:`fit_scalars`), so 5–20 runs suffice. ``k(o)`` is the op's *kind* (a block's kernel and activation):
the ``per-kind`` model lets β differ by kind — runtimes differ most there (onnxruntime → TFLite on one CPU:
×0.8 for 3×3 to ×3.3 for 7×7 ReLU blocks) — shrunk toward one β and kept only when leave-one-out over the
runs says the corrections predict better (:func:`fit_per_kind`). Everything folds into plain LUT entries plus a calibration
offset, so the native predictor answers queries at its usual speed.

Resolutions the source does not serve are filled from the same group at the nearest served resolution,
scaled by the op's multiply-accumulates (or border elements for pooling): declared in the metadata.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..space import Arch, SearchSpace
from ..space.signature import OpSignature
from ..stats import spearman_rho
from . import calibration as cal
from .predictor import LatencyPredictor
from .table import LatencyTable, make_metadata

MODELS: dict[str, tuple[str, ...]] = {
    "scale": ("prior",),  # γ = 0, α = β
    "scale+offset": ("prior", "offset"),  # α = β
    "overhead+compute+offset": ("overhead", "compute", "offset"),
    "per-kind": ("overhead", "compute", "offset"),  # + per-kind β, shrunk toward β (validated, not free unknowns)
}
MIN_RUNS = {name: len(terms) + 1 for name, terms in MODELS.items()}  # one spare run beyond the unknowns
SHARED_MODEL = "overhead+compute+offset"  # one β for every kind: what per-kind corrections must beat
PER_KIND_MIN_RUNS = 6  # below this, leave-one-out cannot judge the per-kind corrections: they stay off
PER_KIND_LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # shrinkage toward one β, in unit-norm columns
PER_KIND_GAIN = 0.8  # corrections are kept only when they cut the leave-one-out RMSPE to ≤ 80% of one β's


@dataclass(frozen=True)
class Run:
    """One whole-subnet timing on the target device; ``line`` is where it came from (for errors)."""

    arch: Arch
    latency_ms: float
    line: str = ""


def read_runs(path: str | os.PathLike[str], space: SearchSpace) -> list[Run]:
    """``{"arch": {OFA dict}, "latency_ms": x}`` per non-empty line; any bad line raises naming ``path:line``."""
    runs = []
    with open(path, encoding="utf-8") as stream:
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            where = f"{os.fspath(path)}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON ({error})") from None
            if not isinstance(record, dict) or "arch" not in record or "latency_ms" not in record:
                raise ValueError(f'{where}: expected {{"arch": {{...}}, "latency_ms": x}}, got {text.strip()[:80]!r}')
            runs.append(make_run(space, record["arch"], record["latency_ms"], where))
    return runs


def make_run(space: SearchSpace, arch: Arch | Mapping[str, Any], latency_ms: Any, where: str = "") -> Run:
    """A checked :class:`Run`: the arch must belong to ``space`` and the latency be a finite number > 0."""
    prefix = f"{where}: " if where else ""
    try:
        checked = space.validate(arch if isinstance(arch, Arch) else Arch.from_dict(arch))
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{prefix}arch is not in space {space.name!r}: {error}") from None
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or not math.isfinite(latency_ms) \
            or latency_ms <= 0:
        raise ValueError(f"{prefix}latency_ms={latency_ms!r} must be a finite number of milliseconds > 0")
    return Run(checked, float(latency_ms), where)


# --- the source LUT, per op ---------------------------------------------------------------------------------
def op_group(sig: OpSignature) -> str:
    """The op's key without its spatial sizes: the same layer at every input resolution."""
    return f"{sig.kind}|{sig.in_c}|{sig.out_c}|{sig.mid_c}|{sig.kernel}|{sig.stride}|{int(sig.se)}|{sig.act}|{int(sig.residual)}"


def kind_label(group: str) -> str:
    """The op's *kind* for per-kind corrections: a block's kernel and activation; every other op is ``other``.

    Chosen by measurement: the onnxruntime → TFLite cost ratio of this CPU's w1.0 LUTs is set mostly by these
    two (median ×0.8–1.0 for 3×3, ×1.0–1.2 for 5×5, ×1.5–3.3 for 7×7, ReLU above h-swish); adding SE or
    dropping the activation predicted worse from 10 runs (docs/adapt.md)."""
    kind, _, _, _, kernel, _, _, act, _ = group.split("|")
    return f"k{kernel}-{act}" if kind == "expanded_conv" else "other"


def _size(sig: OpSignature) -> float:
    """What an op's cost grows with across resolutions (MACs; border elements for pooling)."""
    return float(sig.macs or sig.io_elements)


@dataclass(frozen=True)
class Layout:
    """The space's ops at every resolution: group index and source cost of each, in the predictor's layout.

    ``block_group``/``block_source`` are ``[R, B, K, E]``; ``fixed_group``/``fixed_source`` per resolution.
    """

    space: SearchSpace
    groups: list[str]
    block_group: np.ndarray
    block_source: np.ndarray
    fixed_group: list[np.ndarray]
    fixed_source: list[np.ndarray]
    keys: dict[tuple[int, str], float]  # (resolution, key) → source cost, for writing the adapted LUT
    key_group: dict[str, int]
    served: list[int]
    filled: list[int]  # resolutions the source did not serve, filled from the nearest served one
    kinds: list[str]  # the kind labels present (:func:`kind_label`), sorted
    group_kind: np.ndarray  # per group: index into ``kinds``

    @classmethod
    def build(cls, space: SearchSpace, source: LatencyTable) -> Layout:
        raw = LatencyTable.loads(source.dumps())
        raw.update_metadata(calibration=None)
        served = LatencyPredictor(space, raw).served_resolutions
        layout = space.lut_layout()
        sigs = {s.key: s for s in layout["signatures"]}
        R, B, K, E = len(layout["resolutions"]), layout["B"], layout["K"], layout["E"]
        block_keys = np.array(layout["block_keys"], dtype=object).reshape(R, B, K, E)

        def cost(key: str, r: int) -> float:
            scoped = f"{key}@r{r}"
            return raw.mean(scoped if scoped in raw else key)

        # per group: (resolution, cost, size) measured in the source, for filling unserved resolutions
        measured: dict[str, list[tuple[int, float, float]]] = {}
        for ri, r in enumerate(layout["resolutions"]):
            if r in served:
                for key in set(layout["fixed_keys"][ri]) | set(block_keys[ri].ravel()):
                    measured.setdefault(op_group(sigs[key]), []).append((r, cost(key, r), _size(sigs[key])))

        def value(key: str, r: int) -> float:
            if r in served:
                return cost(key, r)
            near = min(measured[op_group(sigs[key])], key=lambda m: (abs(m[0] - r), m[0]))
            return near[1] * _size(sigs[key]) / near[2] if near[2] > 0 else near[1]

        groups: list[str] = []
        index: dict[str, int] = {}
        keys: dict[tuple[int, str], float] = {}

        def gid(key: str) -> int:
            g = op_group(sigs[key])
            if g not in index:
                index[g] = len(groups)
                groups.append(g)
            return index[g]

        block_group = np.zeros((R, B, K, E), dtype=np.int64)
        block_source = np.zeros((R, B, K, E))
        fixed_group, fixed_source = [], []
        for ri, r in enumerate(layout["resolutions"]):
            for idx in np.ndindex(B, K, E):
                key = block_keys[(ri, *idx)]
                if (r, key) not in keys:
                    keys[(r, key)] = value(key, r)
                block_group[(ri, *idx)] = gid(key)
                block_source[(ri, *idx)] = keys[(r, key)]
            fk = layout["fixed_keys"][ri]
            for key in fk:
                keys.setdefault((r, key), value(key, r))
            fixed_group.append(np.array([gid(k) for k in fk], dtype=np.int64))
            fixed_source.append(np.array([keys[(r, k)] for k in fk]))
        key_group = {key: index[op_group(sigs[key])] for _, key in keys}
        filled = [r for r in layout["resolutions"] if r not in served]
        kinds = sorted({kind_label(g) for g in groups})
        group_kind = np.array([kinds.index(kind_label(g)) for g in groups], dtype=np.int64)
        return cls(space, groups, block_group, block_source, fixed_group, fixed_source, keys, key_group,
                   served, filled, kinds, group_kind)

    def features(self, archs: Sequence[Arch | Mapping[str, Any]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per arch and group: how many ops of the group run (``counts``) and their summed source cost (``sums``)."""
        codes = self.space.as_codes(archs)
        B = self.block_group.shape[1]
        depth = np.asarray(self.space.depth)
        n, ngroups = len(codes), len(self.groups)
        counts, sums = np.zeros((n, ngroups)), np.zeros((n, ngroups))
        r = codes[:, -1]
        slots = np.arange(B)
        stage, position = slots // self.space.max_depth, slots % self.space.max_depth
        active = depth[codes[:, 2 * B + stage]] > position[None, :]
        rows = np.repeat(np.arange(n), B)
        g = self.block_group[r[:, None], slots[None, :], codes[:, :B], codes[:, B:2 * B]]
        s = self.block_source[r[:, None], slots[None, :], codes[:, :B], codes[:, B:2 * B]]
        np.add.at(counts, (rows, g.ravel()), active.ravel().astype(float))
        np.add.at(sums, (rows, g.ravel()), (s * active).ravel())
        for ri in np.unique(r):
            at = np.flatnonzero(r == ri)
            for gi, si in zip(self.fixed_group[ri], self.fixed_source[ri]):
                counts[at, gi] += 1
                sums[at, gi] += si
        return counts, sums


# --- the family prior ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """Per-group overhead (ms per op) and compute factor (× source cost), scaled so that the prior's subnets
    average 1 ms: the few runs then set the real sizes of both parts (α, β)."""

    overhead: np.ndarray
    compute: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def plain(cls, n_groups: int) -> Prior:
        """No prior data: every op pays one unit of overhead plus its source cost."""
        return cls(np.ones(n_groups), np.ones(n_groups), {"kind": "plain: per-op overhead + scaled source"})

    def parts(self, counts: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return counts @ self.overhead, sums @ self.compute

    def kind_parts(self, counts: np.ndarray, sums: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """Per arch: the prior's overhead, and its compute split by kind (``[n, len(layout.kinds)]``)."""
        by_kind = np.zeros((len(layout.groups), len(layout.kinds)))
        by_kind[np.arange(len(layout.groups)), layout.group_kind] = self.compute
        return counts @ self.overhead, sums @ by_kind


def _nonnegative_ridge(design: np.ndarray, target: np.ndarray, ridge: np.ndarray, anchor: np.ndarray,
                       free: np.ndarray) -> np.ndarray:
    """min |design·x - target|² + Σ ridge·(x - anchor)², x ≥ 0 except where ``free``, by an active set."""
    n = design.shape[1]
    clamped = np.zeros(n, dtype=bool)
    for _ in range(n + 1):
        keep = ~clamped
        d = design[:, keep]
        lhs = d.T @ d + np.diag(ridge[keep])
        rhs = d.T @ target + ridge[keep] * anchor[keep]
        x = np.zeros(n)
        x[keep] = np.linalg.solve(lhs, rhs)
        negative = (x < 0) & ~free & ~clamped
        if not negative.any():
            return x
        clamped |= negative
    return x


def fit_device(counts: np.ndarray, sums: np.ndarray, latency: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, ...]:
    """Per-group overhead and compute factor of one well-measured device (≥ hundreds of subnets), fitted on
    relative error with a light ridge toward (0 overhead, factor = the device's global scale), both ≥ 0,
    and a free offset. Returns (overhead, compute, offset)."""
    n, g = counts.shape
    design = np.concatenate([counts, sums, np.ones((n, 1))], axis=1) / latency[:, None]
    scale = float(np.median(latency / sums.sum(axis=1)))
    norms = np.linalg.norm(design, axis=0) + 1e-300
    anchor = np.concatenate([np.zeros(g), np.full(g, scale), [0.0]]) * norms
    free = np.zeros(2 * g + 1, dtype=bool)
    free[-1] = True
    weight = np.full(2 * g + 1, ridge * n / (2 * g + 1))
    weight[-1] = 0.0
    x = _nonnegative_ridge(design / norms, np.ones(n), weight, anchor, free) / norms
    return x[:g], x[g:2 * g], float(x[-1])


def fit_prior(layout: Layout, datasets: Mapping[str, Sequence[Run]], ridge: float = 1e-3) -> Prior:
    """The family prior from other devices' many measured subnets: each device's per-group fit, scaled so its
    subnets average 1 ms (keeping its overhead/compute split), then averaged over the devices weighted by
    how well the additive model fits each (1 / RMSPE²: a noisy device's shape counts less)."""
    if not datasets:
        raise ValueError("fit_prior needs at least one device's runs")
    overheads, computes, weights = [], [], []
    report: dict[str, Any] = {"kind": "family prior", "devices": {}}
    for name, runs in datasets.items():
        if len(runs) < 4 * len(layout.groups):
            raise ValueError(f"prior device {name!r}: {len(runs)} runs; a prior needs at least "
                             f"{4 * len(layout.groups)} (4 per op group) to fit per-group costs")
        counts, sums = layout.features([r.arch for r in runs])
        latency = np.array([r.latency_ms for r in runs])
        overhead, compute, offset = fit_device(counts, sums, latency, ridge)
        o_mean, c_mean = float(np.mean(counts @ overhead)), float(np.mean(sums @ compute))
        predicted = counts @ overhead + sums @ compute + offset
        report["devices"][name] = {"runs": len(runs), "overhead_share": o_mean / (o_mean + c_mean),
                                   "offset_ms": offset, "fit": _summary(predicted, latency)}
        total = max(o_mean + c_mean, 1e-12)
        overheads.append(overhead / total)
        computes.append(compute / total)
        weights.append(1.0 / max(report["devices"][name]["fit"]["rmspe_pct"], 0.1) ** 2)
    w = np.asarray(weights) / np.sum(weights)
    for name, wi in zip(datasets, w):
        report["devices"][name]["weight"] = float(wi)
    return Prior(w @ np.asarray(overheads), w @ np.asarray(computes), report)


def _summary(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    m = cal.metrics(predicted, measured)
    m["spearman"] = spearman_rho(predicted, measured)
    return m


# --- the few runs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scalars:
    overhead: float  # α: ms per unit of prior overhead
    compute: float  # β: × prior compute
    offset: float  # γ: ms per subnet
    kinds: Mapping[str, float] = field(default_factory=dict)  # per-kind β where corrected; other kinds use β

    def compute_of(self, kinds: Sequence[str]) -> np.ndarray:
        """β of each kind in ``kinds``."""
        return np.array([self.kinds.get(k, self.compute) for k in kinds])


def fit_scalars(model: str, overhead: np.ndarray, compute: np.ndarray, latency: np.ndarray) -> Scalars:
    """α, β, γ from the few runs by least squares on relative error; a term that comes out negative is
    dropped and the rest refitted (every entry of the adapted LUT stays ≥ 0)."""
    if model not in MODELS or model == "per-kind":
        raise ValueError(f"model={model!r}; choose one of {[m for m in MODELS if m != 'per-kind']} "
                         "(per-kind: fit_per_kind)")
    terms = list(MODELS[model])
    columns = {"prior": overhead + compute, "overhead": overhead, "compute": compute, "offset": np.ones_like(latency)}
    while True:
        design = np.stack([columns[t] for t in terms], axis=1) / latency[:, None]
        solution, *_ = np.linalg.lstsq(design, np.ones_like(latency), rcond=None)
        values = dict(zip(terms, solution))
        negative = [t for t in terms if t != "offset" and values[t] < 0]
        if not negative or len(terms) == 1:
            break
        terms.remove(negative[0])
        if not any(t != "offset" for t in terms):
            terms = ["prior"]
    prior = max(float(values.get("prior", 0.0)), 0.0)
    return Scalars(max(float(values.get("overhead", prior)), 0.0), max(float(values.get("compute", prior)), 0.0),
                   float(values.get("offset", 0.0)))


def predict_scalars(scalars: Scalars, overhead: np.ndarray, compute: np.ndarray) -> np.ndarray:
    """Latency from the prior's totals (one β: models other than ``per-kind``)."""
    return scalars.overhead * overhead + scalars.compute * compute + scalars.offset


def predict_kinds(scalars: Scalars, overhead: np.ndarray, compute_by_kind: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
    """Latency from the prior's overhead and its compute split by kind (any model)."""
    return scalars.overhead * overhead + compute_by_kind @ scalars.compute_of(kinds) + scalars.offset


def _solve_kinds(overhead: np.ndarray, by_kind: np.ndarray, latency: np.ndarray, shrink: float, base: Scalars,
                 kinds: Sequence[str]) -> Scalars:
    """Per-kind β by least squares on relative error, ridge ``shrink`` pulling each toward the shared fit's β
    (columns at unit norm), α ≥ 0 and β ≥ 0, γ free. Kinds absent from the runs keep the shared β."""
    present = np.flatnonzero(np.any(by_kind > 0, axis=0))
    design = np.concatenate([by_kind[:, present], overhead[:, None], np.ones((len(latency), 1))], axis=1) / latency[:, None]
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    k = len(present)
    anchor = np.concatenate([np.full(k, base.compute), [base.overhead, base.offset]]) * norms
    ridge = np.concatenate([np.full(k, shrink), [0.0, 0.0]])
    free = np.zeros(k + 2, dtype=bool)
    free[-1] = True
    x = _nonnegative_ridge(design / norms, np.ones(len(latency)), ridge, anchor, free) / norms
    betas = np.full(by_kind.shape[1], base.compute)
    betas[present] = x[:k]
    return Scalars(float(x[k]), base.compute, float(x[k + 1]), {name: float(b) for name, b in zip(kinds, betas)})


def _loo_rmspe(held_out: Callable[[int], float], latency: np.ndarray) -> float:
    """Leave-one-out RMSPE (%) over the runs; ``held_out(i)`` predicts run ``i`` from a fit without it."""
    errors = [held_out(i) / latency[i] - 1 for i in range(len(latency))]
    return 100 * float(np.sqrt(np.mean(np.square(errors))))


def fit_per_kind(overhead: np.ndarray, compute_by_kind: np.ndarray, latency: np.ndarray,
                 kinds: Sequence[str]) -> tuple[Scalars, dict[str, Any]]:
    """The ``per-kind`` model: α, γ and one β per kind, or the shared α, β, γ when that predicts as well.

    The shared fit (``overhead+compute+offset``) anchors a ridge that shrinks the per-kind β toward its β; the
    shrinkage is chosen by leave-one-out RMSPE over the runs among :data:`PER_KIND_LAMBDAS`, and the
    corrections are kept only if that RMSPE is ≤ :data:`PER_KIND_GAIN` × the shared fit's own leave-one-out
    RMSPE. On HELP's noisy batch-1 GPU runs they are (rightly) rejected almost always; on onnxruntime →
    TFLite they are kept and cut RMSPE from 25% to 7.5% (docs/adapt.md)."""
    total = compute_by_kind.sum(axis=1)
    base = fit_scalars(SHARED_MODEL, overhead, total, latency)
    report: dict[str, Any] = {"used": False}
    if len(latency) < PER_KIND_MIN_RUNS:
        report["why"] = f"{len(latency)} runs: per-kind corrections need ≥ {PER_KIND_MIN_RUNS} to be validated"
        return base, report
    folds = [np.arange(len(latency)) != i for i in range(len(latency))]  # fold i leaves run i out
    fold_bases = [fit_scalars(SHARED_MODEL, overhead[t], total[t], latency[t]) for t in folds]  # once, for every λ

    def corrected(shrink: float, i: int) -> float:
        t = folds[i]
        s = _solve_kinds(overhead[t], compute_by_kind[t], latency[t], shrink, fold_bases[i], kinds)
        return float(predict_kinds(s, overhead[i:i + 1], compute_by_kind[i:i + 1], kinds)[0])

    loo_shared = _loo_rmspe(lambda i: float(predict_scalars(fold_bases[i], overhead[i], total[i])), latency)
    loo = {shrink: _loo_rmspe(lambda i, s=shrink: corrected(s, i), latency) for shrink in PER_KIND_LAMBDAS}
    best = min(loo, key=loo.__getitem__)
    report.update(loo_rmspe_pct={"shared": loo_shared, "per_kind": loo[best]}, shrink=best)
    if not loo[best] <= PER_KIND_GAIN * loo_shared:
        report["why"] = (f"leave-one-out RMSPE {loo[best]:.2f}% with corrections vs {loo_shared:.2f}% without: "
                         f"not below {PER_KIND_GAIN:.0%} of it")
        return base, report
    fitted = _solve_kinds(overhead, compute_by_kind, latency, best, base, kinds)
    report.update(used=True, factors={k: (b / base.compute if base.compute > 0 else None) for k, b in fitted.kinds.items()})
    return fitted, report


def default_model(has_prior: bool) -> str:
    """What ``model="auto"`` picks, from the benchmarks (docs/adapt.md): with a family prior its shape is
    right and only its size and a fixed term are unknown (``scale+offset``); without one the per-op overhead
    and the source's cost need their own sizes, per kind where the runs support it (``per-kind``)."""
    return "scale+offset" if has_prior else "per-kind"


# --- the adapted LUT ----------------------------------------------------------------------------------------
def adapted_table(layout: Layout, prior: Prior, scalars: Scalars, metadata: Mapping[str, Any]) -> LatencyTable:
    """Fold ``value(o) = α·overhead[g] + β·compute[g]·source(o)`` into entries and γ into the offset; a key
    whose value differs between resolutions is written resolution-scoped (``KEY@rNNN``)."""
    per_key: dict[str, dict[int, float]] = {}
    beta = scalars.compute_of(layout.kinds)[layout.group_kind]  # per group
    for (r, key), source in layout.keys.items():
        g = layout.key_group[key]
        per_key.setdefault(key, {})[r] = scalars.overhead * prior.overhead[g] + beta[g] * prior.compute[g] * source
    names, means = [], []
    for key, by_r in per_key.items():
        values = np.array(list(by_r.values()))
        if np.allclose(values, values[0], rtol=1e-12, atol=0):
            names.append(key)
            means.append(float(values[0]))
        else:
            for r, v in by_r.items():
                names.append(f"{key}@r{r}")
                means.append(float(v))
    stats = np.full((len(names), 6), np.nan)
    stats[:, 0] = means
    table = LatencyTable(metadata=dict(metadata))
    table.set_many(names, stats, np.ones(len(names), dtype=np.int64))
    return table


@dataclass(frozen=True)
class Adaptation:
    table: LatencyTable
    model: str
    scalars: Scalars
    report: dict[str, Any]


def adapt(space: SearchSpace, source: LatencyTable, runs: Sequence[Run], prior_runs: Mapping[str, Sequence[Run]] | None = None,
          model: str = "auto", device: str = "unknown", layout: Layout | None = None, prior: Prior | None = None) -> Adaptation:
    """A LUT for the device ``runs`` were measured on, from ``source`` (any device's LUT of ``space``).

    ``prior_runs`` (device name → many runs) learns the family prior; without it the plain prior is used.
    ``model="auto"`` is :func:`default_model`. Fewer runs than the model needs raise,
    naming the count.
    """
    layout = layout or Layout.build(space, source)
    if prior is None:
        prior = fit_prior(layout, prior_runs) if prior_runs else Prior.plain(len(layout.groups))
    if model == "auto":
        model = default_model(bool(prior_runs) or prior.report.get("kind") == "family prior")
    if model not in MODELS:
        raise ValueError(f"model={model!r}; choose auto or one of {list(MODELS)}")
    if len(runs) < MIN_RUNS[model]:
        where = f" (the last is {runs[-1].line})" if runs and runs[-1].line else ""
        raise ValueError(f"{len(runs)} measured run(s){where}: model {model!r} fits {len(MODELS[model])} unknown(s) "
                         f"and needs at least {MIN_RUNS[model]} runs")
    counts, sums = layout.features([r.arch for r in runs])
    overhead, by_kind = prior.kind_parts(counts, sums, layout)
    latency = np.array([r.latency_ms for r in runs])
    per_kind: dict[str, Any] | None = None
    if model == "per-kind":
        scalars, per_kind = fit_per_kind(overhead, by_kind, latency, layout.kinds)
    else:
        scalars = fit_scalars(model, overhead, by_kind.sum(axis=1), latency)
    fitted = predict_kinds(scalars, overhead, by_kind, layout.kinds)
    report = {"model": model, "runs": len(runs),
              "scalars": {"overhead": scalars.overhead, "compute": scalars.compute, "offset_ms": scalars.offset,
                          "compute_by_kind": dict(scalars.kinds)},
              "fit": _summary(fitted, latency), "prior": prior.report,
              "filled_resolutions": layout.filled, "source_resolutions": layout.served}
    if per_kind is not None:
        report["per_kind"] = per_kind
    src_meta = source.metadata
    metadata = make_metadata(
        device=device, batch=int(src_meta.get("batch") or 1), precision=source.precision,
        protocol={"kind": "few-shot adaptation (hwnas lut adapt)", "runs": len(runs)}, space_hash=space.content_hash,
        space=space.name,
        adapted={"from": source.source or "(in memory)", "from_device": src_meta.get("device"),
                 "from_runtime": src_meta.get("runtime"), "runs": len(runs), **report})
    table = adapted_table(layout, prior, scalars, metadata)
    table.set_calibration(1.0, scalars.offset, model=f"adapted:{model}",
                          validation={"fit_on_runs": report["fit"], "note": "fit on the runs themselves, not held out"})
    return Adaptation(table, model, scalars, report)


# --- which subnets to measure -------------------------------------------------------------------------------
def probe_archs(space: SearchSpace, n: int, seed: int = 0, pool: int = 4000,
                candidates: Sequence[Arch] | None = None) -> list[Arch]:
    """``n`` archs that spread over what the adaptation fits: block count, block size and resolution.

    From a pool of size-stratified random archs (every choice drawn at a random size level, so small and
    large subnets are in it), the smallest and largest subnets first, then greedily the arch farthest
    (max-min distance) from those chosen in (active blocks, mean expand, mean kernel, resolution), each
    axis scaled to [0, 1]. Uncorrelated, wide axes are what make α, β, γ identifiable from few runs.
    ``candidates`` restricts the choice to given archs (e.g. those already measured somewhere).
    """
    if n < 1:
        raise ValueError(f"n={n}: need at least one probe")
    rng = np.random.default_rng(seed)
    if candidates is None:
        cards = space.code_cardinalities()
        levels = rng.uniform(0, 1, (pool, 1))
        codes = rng.binomial(cards[None, :] - 1, np.broadcast_to(levels, (pool, len(cards)))).astype(np.int32)
        independent = rng.random(pool) < 0.5  # half the pool: each choice at its own level (decorrelated axes)
        codes[independent] = rng.binomial(cards[None, :] - 1,
                                          rng.uniform(0, 1, (int(independent.sum()), len(cards)))).astype(np.int32)
        archs = space.decode(codes)
    else:
        archs = [space.validate(a) for a in candidates]
    if n > len(archs):
        raise ValueError(f"n={n}: only {len(archs)} candidate archs")
    return [archs[i] for i in spread(probe_axes(space, archs), n)]


def probe_axes(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    """Per arch: active blocks, mean expand and mean kernel of the active blocks, resolution."""
    return np.array([[sum(a.d), np.mean(_active(space, a, a.e)), np.mean(_active(space, a, a.ks)), a.r]
                     for a in archs], dtype=np.float64)


def spread(axes: np.ndarray, n: int) -> list[int]:
    """Indices of ``n`` rows of ``axes``: the smallest and largest, then greedily the farthest (max-min)."""
    span = axes.max(axis=0) - axes.min(axis=0)
    axes = (axes - axes.min(axis=0)) / np.where(span > 0, span, 1)
    size = axes.sum(axis=1)
    chosen = [int(np.argmin(size))] + ([int(np.argmax(size))] if n > 1 else [])
    distance = np.min(np.linalg.norm(axes[:, None, :] - axes[None, chosen, :], axis=2), axis=1)
    while len(chosen) < n:
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.linalg.norm(axes - axes[best], axis=1))
    return chosen


def _active(space: SearchSpace, arch: Arch, values: Sequence[int | float]) -> list[float]:
    slots = space.active_slots(arch)  # type: ignore[attr-defined]
    return [float(values[b]) for b in slots]
