"""HELP's OFA-MobileNetV3 latency data (../shared/external/help_latency/ofa), read without unpickling objects.

The ``.pt`` files are ``torch.save`` zip archives whose ``data.pkl`` holds plain lists/dicts (and numpy
int64 scalars for ``r``). They are read with a restricted unpickler that builds only numpy scalars and
dtypes (and ``_codecs.encode``, which numpy scalars use for their raw bytes): any other class, or a
tensor storage, is refused. Benchmark-only code: the product never needs HELP's data.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HELP_OFA = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "help_latency" / "ofa"
DEVICES = ("2080ti", "titan_rtx", "titan_xp")
BATCHES = (1, 32, 64)
SPACE = "ofa-mbv3-w1.2"  # HELP's OFA subnets are OFA's w1.2 MobileNetV3 (d234, e346, k357)

_ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
            ("_codecs", "encode")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}: HELP's files hold plain lists/dicts")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a tensor storage: HELP's files hold plain lists/dicts")


def read_pt(path: Path) -> Any:
    """The payload of a ``torch.save`` archive of plain Python data."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {names}")
        return _PlainUnpickler(io.BytesIO(archive.read(names[0]))).load()


def available() -> bool:
    return (HELP_OFA / "ofa_archs.pt").is_file()


def archs() -> list[dict[str, Any]]:
    """The 5,000 OFA arch dicts, with plain ints."""
    raw = read_pt(HELP_OFA / "ofa_archs.pt")["arch"]
    return [{"ks": [int(v) for v in a["ks"]], "e": [int(v) for v in a["e"]], "d": [int(v) for v in a["d"]],
             "r": int(a["r"])} for a in raw]


def latencies(device: str, batch: int) -> np.ndarray:
    """Measured end-to-end latency (ms) of each of the 5,000 archs, same order."""
    values = np.asarray(read_pt(HELP_OFA / "latency" / f"{device}_{batch}.pt"), dtype=np.float64)
    if values.shape != (5000,) or not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise ValueError(f"{device}_{batch}.pt: expected 5,000 finite positive latencies")
    return values
