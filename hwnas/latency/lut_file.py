"""Reading and writing LUT files (docs/lut_format.md) with Python's ``json``, strictly.

A LUT is small and read once, so a well-kept library does the parsing; this module adds what the
format promises on top of it: a file that is missing, corrupt, truncated, not UTF-8, nested too
deeply, holds a number no double can represent, duplicates a key, or comes from a newer hwnas raises
one clear error naming the file and the reason; writes are atomic (temp file + fsync + rename).
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic

FORMAT = "hwnas-latency-table"
SCHEMA_VERSION = 1
STAT_FIELDS = ("mean", "median", "std", "p5", "p95", "min")
MAX_FILE_BYTES = 1 << 30
MAX_DEPTH = 128
MAX_EXACT_INTEGER = 2**53
_TOP_LEVEL = ("format", "schema_version", "metadata", "entries")


class LutFormatError(ValueError):
    """A LUT file or text that breaks the format; the message starts with the file's name."""


@dataclass(frozen=True)
class LutDocument:
    """A LUT file's content, validated: metadata plus entries as arrays (keys sorted)."""

    metadata: dict[str, Any]
    keys: list[str]
    stats: np.ndarray   # float64 [N, 6] in STAT_FIELDS order, NaN = unknown
    counts: np.ndarray  # int64 [N]


# --- reading ------------------------------------------------------------------------------------
def read_document(path: str | os.PathLike[str]) -> LutDocument:
    """Read and validate a LUT file: ``FileNotFoundError``/``OSError`` or :class:`LutFormatError`, each naming it."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise LutFormatError(f"{source}: file is {size} bytes; latency tables over 1 GiB are refused")
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: cannot open: no such file") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{source}: is a directory, not a latency table file") from None
    except OSError as error:
        raise OSError(f"{source}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LutFormatError(f"{source}: file is over 1 GiB; latency tables that large are refused")
    return parse_document(data, source)


def parse_document(data: bytes | str, source: str = "<string>") -> LutDocument:
    """Validate LUT text (bytes must be UTF-8); :class:`LutFormatError` ``"<source>: <reason>"`` otherwise."""
    def fail(reason: str) -> LutFormatError:
        return LutFormatError(f"{source}: {reason}")

    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise fail(f"not UTF-8 (byte {error.start}: {error.reason})") from None
    else:
        text = data
    if not text.strip():
        raise fail("file is empty")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                              parse_int=_bounded_int, object_pairs_hook=_unique_members)
    except json.JSONDecodeError as error:
        ends_early = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        ending = "truncated: the text ends inside a value; " if ends_early else ""
        raise fail(f"{ending}invalid JSON at line {error.lineno}, column {error.colno} (char {error.pos}): {error.msg}") from None
    except RecursionError:
        raise fail(f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # raised by the hooks: non-finite or oversized numbers, duplicate keys
        raise fail(str(error)) from None
    problem = _structure_problem(document)
    if problem:
        raise fail(problem)
    return _validated(document, fail)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (latency tables hold finite numbers only)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_short(text)} does not fit in a double")
    return value


def _bounded_int(text: str) -> int | float:
    digits = len(text.lstrip("-"))
    if digits > 400:  # beyond any double; also before int() would refuse it on Python's digit limit
        raise ValueError(f"number {_short(text)} ({digits} digits) does not fit in a double")
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise ValueError(f"number {_short(text)} does not fit in a double")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for key, value in pairs:
        if key in members:
            raise ValueError(f"duplicate key {json.dumps(key)} in an object")
        members[key] = value
    return members


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _structure_problem(document: Any) -> str:
    """Nesting over MAX_DEPTH, or a string Python decoded from a lone surrogate escape (not Unicode text)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"nesting deeper than {MAX_DEPTH} levels"
            items = list(value.items()) if isinstance(value, dict) else [(None, item) for item in value]
            for key, item in items:
                if key is not None and not _is_unicode(key):
                    return f"key {_escaped(key)!r} is not valid Unicode (lone surrogate escape)"
                stack.append((item, depth + 1))
        elif isinstance(value, str) and not _is_unicode(value):
            return f"string {_short(_escaped(value))!r} is not valid Unicode (lone surrogate escape)"
    return ""


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def _preview(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    return _short(json.dumps(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_integer(value: Any) -> int | None:
    """The integer a JSON number holds exactly (|x| <= 2^53), else None."""
    if not _is_number(value) or value != math.trunc(value) or abs(value) > MAX_EXACT_INTEGER:
        return None
    return int(value)


def _validated(document: Any, fail: Any) -> LutDocument:
    if not isinstance(document, dict):
        raise fail(f"top level is {_preview(document)}, expected an object")
    problem = header_problem(document)
    if problem:
        raise fail(problem)
    problem = metadata_problem(document["metadata"])
    if problem:
        raise fail(f"metadata: {problem}")
    if "entries" not in document:
        raise fail('missing "entries" field')
    entries = document["entries"]
    if not isinstance(entries, dict):
        raise fail(f'"entries" must be an object, got {_preview(entries)}')
    keys = sorted(entries)
    stats = np.empty((len(keys), len(STAT_FIELDS)), dtype=np.float64)
    counts = np.empty(len(keys), dtype=np.int64)
    for row, key in enumerate(keys):
        problem = "keys must be non-empty" if not key else _entry_problem(entries[key], stats[row], counts, row)
        if problem:
            raise fail(f"entry {json.dumps(key, ensure_ascii=False)}: {problem}")
    return LutDocument(document["metadata"], keys, stats, counts)


def header_problem(document: dict[str, Any]) -> str:
    """Why the top level is not an hwnas LUT of a version this build reads ("" if it is)."""
    unknown = [name for name in document if name not in _TOP_LEVEL]
    if unknown:
        return f"unknown top-level field {json.dumps(unknown[0], ensure_ascii=False)}"
    if "format" not in document:
        return 'missing "format" field (not an hwnas latency table?)'
    if document["format"] != FORMAT:
        return f'"format" is {_preview(document["format"])}, expected "{FORMAT}"'
    if "schema_version" not in document:
        return 'missing "schema_version" field'
    version = _as_integer(document["schema_version"])
    if version is None:
        return f'"schema_version" must be an integer, got {_preview(document["schema_version"])}'
    if version > SCHEMA_VERSION:
        return f"written by a newer hwnas: schema_version {version}, this build reads {SCHEMA_VERSION}"
    if version != SCHEMA_VERSION:
        return f"unsupported schema_version {version}, this build reads {SCHEMA_VERSION}"
    if "metadata" not in document:
        return 'missing "metadata" field'
    return ""


def metadata_problem(metadata: Any) -> str:
    """Why ``metadata`` breaks the rules predictors rely on ("" if it does not): units, batch, calibration."""
    if not isinstance(metadata, dict):
        return f"must be a JSON object, got {_preview(metadata)}"
    if "units" in metadata and metadata["units"] != "ms":
        return f'"units" must be "ms", got {_preview(metadata["units"])}'
    if "calibration" in metadata:
        problem = _calibration_problem(metadata["calibration"])
        if problem:
            return problem
    if "batch" in metadata:
        batch = _as_integer(metadata["batch"])
        if batch is None or batch < 1:
            return f'"batch" must be an integer >= 1, got {_preview(metadata["batch"])}'
    return ""


def _calibration_problem(calibration: Any) -> str:
    if calibration is None:
        return ""
    if not isinstance(calibration, dict):
        return f'"calibration" must be an object or null, got {_preview(calibration)}'
    scale = calibration.get("scale")
    if not (_is_number(scale) and math.isfinite(scale) and scale > 0):
        return f'"calibration"."scale" must be a finite number > 0, got {"nothing" if scale is None else _preview(scale)}'
    offset = calibration.get("offset")
    if not (_is_number(offset) and math.isfinite(offset)):
        return f'"calibration"."offset" must be a finite number, got {"nothing" if offset is None else _preview(offset)}'
    for name in ("per_op", "per_element", "per_param"):  # optional terms of the richer calibration
        if name in calibration and not (_is_number(calibration[name]) and math.isfinite(calibration[name])):
            return f'"calibration"."{name}" must be a finite number, got {_preview(calibration[name])}'
    return ""


def calibration_terms(metadata: dict[str, Any]) -> dict[str, float] | None:
    """The calibration a predictor applies (scale, offset, per_op, per_element, per_param), or None."""
    calibration = metadata.get("calibration")
    if not isinstance(calibration, dict):
        return None
    return {"scale": float(calibration["scale"]), "offset": float(calibration["offset"]),
            **{name: float(calibration.get(name, 0.0)) for name in ("per_op", "per_element", "per_param")}}


def _entry_problem(entry: Any, stats: np.ndarray, counts: np.ndarray, row: int) -> str:
    """Fill ``stats``/``counts[row]`` from one entry; the problem with it, or ""."""
    if not isinstance(entry, dict):
        return f"must be an object, got {_preview(entry)}"
    unknown = [name for name in entry if name not in (*STAT_FIELDS, "n")]
    if unknown:
        return "unknown field(s) " + ", ".join(json.dumps(name, ensure_ascii=False) for name in unknown)
    if "mean" not in entry:
        return 'missing field "mean"'
    if not _is_number(entry["mean"]):
        return f'"mean" must be a number, got {_preview(entry["mean"])}'
    if "n" not in entry:
        return 'missing field "n"'
    n = _as_integer(entry["n"])
    if n is None or n < 1:
        return f'"n" must be an integer >= 1, got {_preview(entry["n"])}'
    counts[row] = n
    for column, name in enumerate(STAT_FIELDS):
        value = entry.get(name)
        if value is None:
            stats[column] = math.nan
            continue
        if not _is_number(value):
            return f'"{name}" must be a number or null, got {_preview(value)}'
        if not value >= 0:
            return f"{name} must be finite and >= 0{'' if name == 'mean' else ' (or unknown)'}, got {_preview(value)}"
        stats[column] = float(value)
    return ""


# --- writing ------------------------------------------------------------------------------------
def document_text(metadata: dict[str, Any], keys: list[str], stats: np.ndarray, counts: np.ndarray) -> str:
    """The file's text: sorted keys, two-space indent, one entry per line, unknown statistics as null."""
    def number(x: float) -> float | None:
        return None if math.isnan(x) else x

    lines = []
    for key, row, n in zip(keys, stats.tolist(), counts.tolist()):
        entry = {name: number(value) for name, value in zip(STAT_FIELDS, row)}
        entry["n"] = int(n)
        lines.append(f"    {json.dumps(key, ensure_ascii=False)}: "
                     f"{json.dumps(entry, sort_keys=True, allow_nan=False, ensure_ascii=False)}")
    entries = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    meta = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False).replace("\n", "\n  ")
    return (f'{{\n  "entries": {entries},\n  "format": "{FORMAT}",\n  "metadata": {meta},\n'
            f'  "schema_version": {SCHEMA_VERSION}\n}}\n')


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Temp file beside the target, fsync, rename: a crash never leaves a half-written table. The folder must exist."""
    write_bytes_atomic(path, text.encode("utf-8"), make_parents=False)
