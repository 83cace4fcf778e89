"""``LatencyTable``: measured cost of every operator on one device, backed by the native ``_C.Table``.

On disk it is versioned JSON (see docs/lut_format.md), read strictly and written atomically by
:mod:`hwnas.latency.lut_file` with Python's ``json``; nothing is ever unpickled. Metadata records what
was measured and how: device, runtime, precision, batch, the measurement protocol, the space hash and
an optional calibration ``{scale, offset, validation}``.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _C
from . import lut_file

SCHEMA_VERSION = lut_file.SCHEMA_VERSION
STAT_FIELDS = lut_file.STAT_FIELDS
PRECISIONS = ("fp32", "int8")  # what a table's entries can price (metadata "precision"; absent: fp32)


def device_name(lut: str | os.PathLike[str]) -> str:
    """The name a LUT file goes by: ``device_profiles/ort-cpu-1t-tiny-mbv3/lut.json`` → ``ort-cpu-1t-tiny-mbv3``;
    ``note10.json`` → ``note10``."""
    path = Path(lut)
    return path.parent.name if path.name == "lut.json" and path.parent.name else path.stem


def make_metadata(
    device: str = "unknown",
    runtime: Mapping[str, Any] | None = None,
    precision: str = "fp32",
    batch: int = 1,
    protocol: Mapping[str, Any] | None = None,
    space_hash: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata every table carries; unknown fields are explicit nulls rather than absent."""
    from .. import __version__

    runtime = {"name": "unknown", "version": None, "provider": None, "threads": None, **(runtime or {})}
    return {
        "schema_version": SCHEMA_VERSION,
        "device": device,
        "runtime": runtime,
        "precision": precision,
        "batch": int(batch),
        "units": "ms",
        "protocol": dict(protocol or {}),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hwnas_version": __version__,
        "space_hash": space_hash,
        "calibration": None,
        **extra,
    }


class LatencyTable:
    """Operator key → latency statistics (ms) plus metadata. Mutating methods change it in place.

    ``source`` is the file a table was loaded from (None for one built in memory): errors about a
    table name it.
    """

    def __init__(self, metadata: Mapping[str, Any] | None = None) -> None:
        self._native = _C.Table()
        self._metadata: dict[str, Any] = {}
        self.source: str | None = None
        self.metadata = make_metadata() if metadata is None else metadata

    # --- persistence ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Read a table; a missing, corrupt, truncated or wrong-version file raises naming file and reason."""
        table = cls._from_document(lut_file.read_document(path))
        table.source = os.fspath(path)
        return table

    @classmethod
    def loads(cls, text: str, source: str = "<string>") -> LatencyTable:
        return cls._from_document(lut_file.parse_document(text, source))

    @classmethod
    def _from_document(cls, document: lut_file.LutDocument) -> LatencyTable:
        table = cls(document.metadata)
        table._native.set_many(document.keys, document.stats, document.counts)
        return table

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + rename): a crash never leaves a half-written table."""
        lut_file.write_text_atomically(path, self.dumps())

    def dumps(self) -> str:
        keys, stats, counts = self._native.entry_arrays()
        return lut_file.document_text(self._metadata, keys, stats, counts)

    # --- metadata -------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """A copy: change it with the setter or :meth:`update_metadata`."""
        return copy.deepcopy(self._metadata)

    @metadata.setter
    def metadata(self, value: Mapping[str, Any]) -> None:
        """Replace the metadata: it must be JSON (no NaN) and meet the rules in docs/lut_format.md."""
        normalised = json.loads(json.dumps(dict(value), allow_nan=False))
        problem = lut_file.metadata_problem(normalised)
        if problem:
            raise ValueError(f"metadata: {problem}")
        terms = lut_file.calibration_terms(normalised)
        if terms is None:
            self._native.clear_calibration()
        else:
            self._native.set_calibration(**terms)
        self._metadata = normalised

    def update_metadata(self, **fields: Any) -> None:
        self.metadata = {**self._metadata, **fields}

    @property
    def precision(self) -> str:
        """What the entries price, ``fp32`` or ``int8``; a table that does not say (imported, older) prices fp32."""
        return str(self._metadata.get("precision") or "fp32")

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.metadata.get("calibration")

    def set_calibration(self, scale: float, offset: float, **report: Any) -> None:
        """Store the end-to-end calibration ``latency ≈ scale · Σ ops + offset`` applied by predictors."""
        self.update_metadata(calibration={"scale": float(scale), "offset": float(offset), **report})

    # --- entries --------------------------------------------------------------------------------
    def set(self, key: str, mean: float, n: int = 1, **stats: float | None) -> None:
        """Add or replace one entry; stats not given (median, std, p5, p95, min) are unknown."""
        unknown = set(stats) - set(STAT_FIELDS[1:])
        if unknown:
            raise ValueError(f"unknown statistic(s) {sorted(unknown)} for key {key!r}; allowed: {STAT_FIELDS[1:]}")
        values = {name: math.nan if stats.get(name) is None else float(stats[name]) for name in STAT_FIELDS[1:]}
        self._native.set(key, float(mean), n=int(n), **values)

    def set_many(self, keys: list[str], stats: np.ndarray, counts: np.ndarray) -> None:
        """Bulk insert: ``stats`` is float64 ``[N, 6]`` (mean, median, std, p5, p95, min; NaN = unknown)."""
        self._native.set_many(list(keys), np.asarray(stats, dtype=np.float64), np.asarray(counts, dtype=np.int64))

    def get(self, key: str) -> dict[str, float | int | None]:
        """Stats of one entry, with unknown values as None."""
        stats = self._native.get(key)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stats.items()}

    def mean(self, key: str) -> float:
        return float(self._native.means([key])[0])

    def means(self, keys: list[str]) -> np.ndarray:
        return self._native.means(list(keys))

    def keys(self) -> list[str]:
        return self._native.keys()

    def remove(self, key: str) -> None:
        self._native.remove(key)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not in the table, in the given order."""
        return self._native.missing(list(keys))

    def merge(self, other: LatencyTable, on_conflict: str = "error") -> None:
        """Add ``other``'s entries; a differing duplicate is an error unless ``on_conflict`` is keep/replace."""
        self._native.merge(other._native, on_conflict)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._native

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        meta = self.metadata
        runtime = meta.get("runtime") or {}
        return f"LatencyTable({len(self)} entries, device={meta.get('device')!r}, runtime={runtime.get('name')!r})"
