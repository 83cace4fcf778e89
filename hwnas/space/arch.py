"""The architecture value: which kernel, expand ratio, depth and resolution a subnet uses.

An ``Arch`` is immutable and knows nothing about a particular search space: it checks only its own
shape and types. Whether its values are allowed is the space's job (``SearchSpace.validate``). Its dict
form is OFA's (``{"ks": [...], "e": [...], "d": [...], "r": 224}``) so that archives written by OFA,
HELP and similar tools load unchanged.
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _as_int(field: str, value: Any) -> int:
    """An integer from int-like input (numpy scalars included); bools and fractions are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer() and not isinstance(value, bool):
            return int(value)
        raise ValueError(f"{field}={value!r} is not an integer")
    return int(value)


def _as_ratio(field: str, value: Any) -> int | float:
    """An expand ratio: kept an int when integral (OFA writes 3, 4, 6), else a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field}={value!r} is not a number")
    number = float(value)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"{field}={value!r} must be a positive finite number")
    return int(number) if number.is_integer() else number


def _as_list(field: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        try:
            value = list(value)  # numpy arrays and other iterables
        except TypeError:
            raise ValueError(f"{field} must be a list, got {type(value).__name__}") from None
    return list(value)


@dataclass(frozen=True)
class Arch:
    """One subnet: kernel size and expand ratio per block slot, depth per stage, input resolution."""

    ks: tuple[int, ...]
    e: tuple[int | float, ...]
    d: tuple[int, ...]
    r: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(_as_int(f"ks[{i}]", v) for i, v in enumerate(_as_list("ks", self.ks))))
        object.__setattr__(self, "e", tuple(_as_ratio(f"e[{i}]", v) for i, v in enumerate(_as_list("e", self.e))))
        object.__setattr__(self, "d", tuple(_as_int(f"d[{i}]", v) for i, v in enumerate(_as_list("d", self.d))))
        object.__setattr__(self, "r", _as_int("r", self.r))
        if len(self.ks) != len(self.e):
            raise ValueError(f"ks and e must have one value per block slot: len(ks)={len(self.ks)}, len(e)={len(self.e)}")
        if not self.d:
            raise ValueError("d must list at least one stage depth")
        if self.r <= 0:
            raise ValueError(f"r={self.r} must be a positive image size")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build from OFA's dict form; ``image_size`` is accepted for ``r`` and ``r`` may be ``[224]``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an arch must be a dict with keys ks, e, d, r; got {type(data).__name__}")
        missing = [k for k in ("ks", "e", "d") if k not in data]
        if "r" not in data and "image_size" not in data:
            missing.append("r")
        if missing:
            raise ValueError(f"arch dict is missing {', '.join(missing)} (keys present: {sorted(data)})")
        r = data["r"] if "r" in data else data["image_size"]
        if isinstance(r, (list, tuple)) or (hasattr(r, "shape") and getattr(r, "shape", ()) != ()):
            values = _as_list("r", r)
            if len(values) != 1:
                raise ValueError(f"r={r!r} must be one image size")
            r = values[0]
        return cls(ks=data["ks"], e=data["e"], d=data["d"], r=r)

    def to_dict(self) -> dict[str, Any]:
        """OFA's dict form with plain Python values."""
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"arch JSON is malformed: {error}") from None
        return cls.from_dict(data)
