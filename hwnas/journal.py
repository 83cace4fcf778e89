"""An append-only JSONL journal that makes long jobs (profiling, accuracy datasets) resumable.

Line 1 is a header describing the run (space, target, protocol, ...): reopening with a header that
differs in any field is refused, naming the field. Each further line is one finished result, flushed
and fsync'ed before the next starts, so a run killed at any moment loses at most the entry in flight.
A torn last line (killed mid-write) is dropped on reopen; anything else that does not parse is
corruption and raises naming the line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

COMPARED_HEADER_FIELDS = ("space_hash", "target", "runtime_version", "threads", "resolutions", "protocol", "passes",
                          "seed")


class Journal:
    """Records of one profiling run keyed by ``(key, pass)``; ``append`` is durable."""

    def __init__(self, path: Path, header: dict[str, Any], writable: bool = True) -> None:
        """Open (creating it when absent) the journal at ``path``; ``writable=False`` only reads it,
        leaving a torn last line in place (another process may be writing it)."""
        self.path = path
        self.header = header
        self.records: dict[tuple[str, int], dict[str, Any]] = {}
        if path.exists() and path.stat().st_size > 0:
            self._resume(truncate=writable)
        elif not writable:
            raise ValueError(f"{path}: no journal to read")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"type": "header", **header}, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _resume(self, truncate: bool) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # text after the last newline is a torn write
        valid_bytes = len(raw) - len(tail)
        if not complete:
            raise ValueError(f"{self.path}: journal has no complete header line; delete it to start over")
        for number, line in enumerate(complete, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{self.path}:{number}: corrupt journal line; delete the journal to start over") from None
            if number == 1:
                self._check_header(record)
            elif record.get("type") == "entry":
                key = (record["key"], int(record["pass"]))
                if key in self.records:
                    raise ValueError(f"{self.path}:{number}: duplicate entry {key}")
                self.records[key] = record
        if tail and truncate:
            with open(self.path, "r+b") as handle:  # drop the torn write before appending again
                handle.truncate(valid_bytes)

    def _check_header(self, record: dict[str, Any]) -> None:
        if record.get("type") != "header":
            raise ValueError(f"{self.path}: first line is not a journal header")
        for field in sorted(set(self.header) | set(record) - {"type"}):
            if record.get(field) != self.header.get(field):
                raise ValueError(
                    f"{self.path}: this journal belongs to a different run ({field}: journal has "
                    f"{record.get(field)!r}, this run {self.header.get(field)!r}); use another output folder"
                )

    def done(self, key: str, pass_index: int) -> bool:
        return (key, pass_index) in self.records

    def append(self, key: str, pass_index: int, data: dict[str, Any]) -> None:
        record = {"type": "entry", "key": key, "pass": pass_index, **data}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records[(key, pass_index)] = record
