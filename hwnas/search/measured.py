"""Accuracies measured on the supernet, which the search prefers to the predictor's for the same archs.

The accuracy predictor is a smooth fit: it is right on average (held-out MAE a few tenths of a point) but
it cannot follow a single subnet that sits apart from its neighbours. Progressive shrinking makes one
such subnet every time: the largest, trained at every step by the sandwich rule. On the zoo's supernet it
measures 86.4% on the validation split where every other subnet of the 1,250 measured stays ≤ 84.8%, and
the fitted predictor gives it 85.8%, so under a budget that admits it the search chose a smaller subnet
the predictor rated higher (and that measured 1.5 points lower). A measurement of an arch beats any
prediction of it: the search looks each arch up here first and predicts only the others, and it starts
its population from the best measured archs that fit each budget.

The archs are those of the predictor's own dataset (the same validation split, the same BN
recalibration), read from its JSONL file: one ``{"arch": {...}, "accuracy": x}`` per line.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic
from ..space.arch import Arch
from ..space.base import SearchSpace


@dataclass(frozen=True)
class MeasuredAccuracies:
    """Archs of ``space`` as int32 codes ``[N, S]`` and their measured top-1 accuracies ``[N]`` (0–1)."""

    codes: np.ndarray
    accuracies: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or len(self.codes) != len(self.accuracies):
            raise ValueError(f"measured accuracies{self._from}: {len(self.accuracies)} accuracies for codes of shape "
                             f"{self.codes.shape}")

    @property
    def _from(self) -> str:
        return f" from {self.source}" if self.source else ""

    def __len__(self) -> int:
        return len(self.accuracies)

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: SearchSpace) -> MeasuredAccuracies:
        """Read a JSONL of ``{"arch", "accuracy"}`` lines; ValueError naming the file and line of a bad one."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such measured-accuracy file")
        codes, accuracies = [], []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    arch = space.validate(Arch.from_dict(record["arch"]))
                    accuracy = float(record["accuracy"])
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}:{number}: not an arch of {space.name} with its accuracy ({error})") from None
                if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
                    raise ValueError(f"{path}:{number}: accuracy {record['accuracy']!r} is not a fraction in [0, 1]")
                codes.append(space.encode(arch)[0])
                accuracies.append(accuracy)
        if not codes:
            raise ValueError(f"{path}: holds no measured accuracies")
        return cls(np.asarray(codes, dtype=np.int32), np.asarray(accuracies, dtype=np.float64), str(path))

    def save(self, path: str | os.PathLike[str], space: SearchSpace) -> Path:
        """Write the JSONL :meth:`load` reads (atomically)."""
        archs = space.decode(self.codes)
        text = "".join(json.dumps({"arch": arch.to_dict(), "accuracy": round(float(accuracy), 6)}) + "\n"
                       for arch, accuracy in zip(archs, self.accuracies))
        write_bytes_atomic(path, text.encode())
        return Path(path)


def beside_predictor(predictor: str | os.PathLike[str]) -> Path | None:
    """The dataset a predictor was fitted on, where it lies next to it: ``accuracy_dataset.jsonl`` in the
    predictor's folder (a zoo entry ships it; a search that fits a predictor writes it). None when there is none."""
    candidate = Path(predictor).parent / "accuracy_dataset.jsonl"
    return candidate if candidate.is_file() else None
