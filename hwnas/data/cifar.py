"""CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``) read without unpickling code.

The batches are pickles. They are read with a restricted unpickler whose ``find_class`` refuses every
global except the three numpy needs to rebuild a plain array (``_reconstruct``, ``ndarray``, ``dtype``)
and ``_codecs.encode`` restricted to latin-1 (how Python 3 writes ``bytes`` at protocol 2): the original
batches store ``data`` as a uint8 ndarray, and nothing in them needs anything else. So a
tampered batch (``os.system``, ``builtins.eval``, ...) fails with ``ValueError`` before any call happens.
Object arrays are rejected after loading, so no array can smuggle arbitrary objects either.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"

_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]  # numpy's own array rebuilder, whatever module it lives in


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 writes for ``bytes`` at pickle protocol 2 (``_codecs.encode(s, 'latin1')``); other codecs refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves no global but numpy's plain-array rebuilders; persistent ids are refused too."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def safe_load_pickle(path: str | Path) -> Any:
    """Load a CIFAR-style pickle with :class:`RestrictedUnpickler`; any refusal or corruption is a ``ValueError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: refused or corrupt pickle: {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        raise ValueError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from None
    _reject_objects(obj, path)
    return obj


def _reject_objects(obj: Any, path: Path) -> None:
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise ValueError(f"{path}: object arrays are not allowed")
    if isinstance(obj, dict):
        for value in obj.values():
            _reject_objects(value, path)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _reject_objects(value, path)


def _key(d: dict, name: str) -> Any:
    for k in (name, name.encode()):
        if k in d:
            return d[k]
    raise KeyError(name)


def _text(x: Any) -> str:
    return x.decode("latin1") if isinstance(x, bytes) else str(x)


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images N×32×32×3 HWC, int64 labels N)."""
    path = Path(path)
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a dict, got {type(d).__name__}")
    try:
        data, labels = _key(d, "data"), _key(d, "labels")
    except KeyError as exc:
        raise ValueError(f"{path}: missing key {exc.args[0]!r}") from None
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, np.uint8)
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.size % 3072:
        raise ValueError(f"{path}: 'data' must be uint8 with 3072 values per image, got {data.dtype} size {data.size}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: 'labels' must be a flat list of ints")
    n = data.size // 3072
    if len(labels) != n:
        raise ValueError(f"{path}: {n} images but {len(labels)} labels")
    images = np.ascontiguousarray(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW planes -> HWC
    return images, labels.astype(np.int64)


def read_meta(path: str | Path) -> tuple[str, ...]:
    """``batches.meta`` -> class names in label order."""
    path = Path(path)
    d = safe_load_pickle(path)
    try:
        return tuple(_text(n) for n in _key(d, "label_names"))
    except (KeyError, TypeError):
        raise ValueError(f"{path}: no 'label_names' list") from None


def read_cifar10_batches(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Read ``split`` ('train' = data_batch_1..5, 'test' = test_batch) from a ``cifar-10-batches-py`` folder."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    files = TRAIN_FILES if split == "train" else TEST_FILES
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise ValueError(f"{root}: missing CIFAR-10 batch file(s) {', '.join(missing)}")
    parts = [read_batch(root / f) for f in files]
    classes = read_meta(root / META_FILE) if (root / META_FILE).is_file() else None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes
