"""Import OFA / ProxylessNAS latency lookup tables (per-resolution YAML, or DynamicOFA's JSON).

Each file maps an OFA op key to ``{count, mean, std}`` (ProxylessNAS: ``var``). OFA keeps one file per
input resolution, and the 1×1 head ops (``Conv_2``, ``Logits``) have the same key in every file with
slightly different measured values. To reproduce OFA's per-resolution sums exactly, such keys are stored
resolution-scoped (``key@r160``) when the files disagree; predictors look up ``key@r<res>`` first.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .table import LatencyTable, make_metadata

_STEM_KEY = re.compile(r"^Conv-input:(\d+)x(\d+)x3-")
_FILE_RES = re.compile(r"^(\d+)_lookup_table\.(ya?ml|json)$")


def _expand(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Path]:
    """Files from paths; a directory stands for its ``*_lookup_table.{yaml,yml,json}`` files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if _FILE_RES.match(p.name) or p.suffix in (".yaml", ".yml"))
            if not found:
                raise ValueError(f"{path}: directory holds no OFA lookup tables (*_lookup_table.yaml/json)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    if not files:
        raise ValueError("import_ofa needs at least one file")
    return files


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8", errors="strict")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not a valid OFA lookup table ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty mapping of op key -> {{count, mean, std}}")
    return data


def _entry(path: Path, key: Any, value: Any) -> tuple[float, float, int]:
    """(mean, std, count) of one OFA entry, or ValueError naming file, key and field."""
    if not isinstance(key, str) or not isinstance(value, dict):
        raise ValueError(f"{path}: entry {key!r} must map a string key to {{count, mean, std}}")
    def number(field: str) -> float:
        raw = value.get(field)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
            raise ValueError(f"{path}: {key}: {field}={raw!r} must be a finite number >= 0")
        return float(raw)
    mean = number("mean")
    std = number("std") if "std" in value else math.sqrt(number("var")) if "var" in value else math.nan
    count = int(number("count")) if "count" in value else 1
    return mean, std, max(count, 1)


def _resolution(path: Path, data: dict[str, Any]) -> int | None:
    """Input resolution a per-resolution file was measured at (from its stem key, else its name)."""
    from_keys = {int(m.group(1)) for k in data if isinstance(k, str) and (m := _STEM_KEY.match(k))}
    match = _FILE_RES.match(path.name)
    from_name = int(match.group(1)) if match else None
    if len(from_keys) > 1:
        raise ValueError(f"{path}: stem entries for several resolutions {sorted(from_keys)} in one file")
    from_key = next(iter(from_keys), None)
    if from_key is not None and from_name is not None and from_key != from_name:
        raise ValueError(f"{path}: file name says resolution {from_name} but its stem key says {from_key}")
    return from_key if from_key is not None else from_name


def import_ofa_tables(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str], **metadata: Any) -> LatencyTable:
    """Build one ``LatencyTable`` from OFA-format files; ``metadata`` overrides the defaults (device=...)."""
    files = _expand(paths)
    per_file: list[tuple[Path, int | None, dict[str, tuple[float, float, int]]]] = []
    for path in files:
        data = _read(path)
        entries = {key: _entry(path, key, value) for key, value in data.items()}
        per_file.append((path, _resolution(path, data), entries))
    resolutions = [res for _, res, _ in per_file]
    if len(per_file) > 1:
        unknown = [str(p) for p, res, _ in per_file if res is None]
        if unknown:
            raise ValueError(f"cannot tell the resolution of {unknown}: several files need a stem key or NNN_lookup_table name")
        if len(set(resolutions)) != len(resolutions):
            raise ValueError(f"several files for the same resolution: {sorted(resolutions)}")
    seen: dict[str, set[tuple[float, float, int]]] = {}
    for _, _, entries in per_file:
        for key, stats in entries.items():
            seen.setdefault(key, set()).add(stats)
    keys: list[str] = []
    rows: list[tuple[float, ...]] = []
    counts: list[int] = []
    plain_done: set[str] = set()
    for _, res, entries in per_file:
        for key, (mean, std, count) in entries.items():
            if len(seen[key]) > 1:
                keys.append(f"{key}@r{res}")  # differs between files: keep each file's own value
            elif key in plain_done:
                continue
            else:
                plain_done.add(key)
                keys.append(key)
            rows.append((mean, math.nan, std, math.nan, math.nan, math.nan))
            counts.append(count)
    protocol = {"source": "imported", "format": "ofa-lookup-table", "files": [p.name for p, _, _ in per_file],
                "resolutions": sorted(r for r in resolutions if r is not None)}
    meta = make_metadata(protocol=protocol)
    meta.update(metadata)
    table = LatencyTable(metadata=meta)
    table.set_many(keys, np.array(rows, dtype=np.float64).reshape(-1, 6), np.array(counts, dtype=np.int64))
    return table
