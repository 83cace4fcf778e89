"""How the shipped CIFAR-10 subset (``assets/cifar10_subset.npz``) is made, so anyone can rebuild it bit for bit.

``python -m hwnas.data.subset ../shared/data/cifar10 hwnas/data/assets/cifar10_subset.npz``
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from hwnas.data.datasets import CIFAR10_CLASSES, load_npz


def first_per_class(labels: np.ndarray, names: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` file names (bytewise order) of every class, sorted by (class, name)."""
    picked = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        members = members[np.argsort(names[members].astype(bytes), kind="stable")]
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, {per_class} requested")
        picked.append(members[:per_class])
    return np.concatenate(picked)


def write_npz_lzma(path: str | Path, **arrays: np.ndarray) -> None:
    """An ``.npz`` whose members are LZMA-compressed (``numpy.load`` reads it; ~18% smaller than deflate here)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))  # fixed time: reproducible bytes
            info.compress_type = zipfile.ZIP_LZMA
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)


def build_cifar10_subset(src_dir: str | Path, out: str | Path, train_per_class: int = 500, test_per_class: int = 200) -> None:
    """Take the first N file names per class from ``cifar10_{train,test}.npz`` and write one archive with
    ``{train,test}_{images,labels,names}`` and ``classes``."""
    arrays: dict[str, np.ndarray] = {"classes": np.array(CIFAR10_CLASSES)}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        ds = load_npz(Path(src_dir) / f"cifar10_{split}.npz")
        if ds.filenames is None:
            raise ValueError(f"{src_dir}: cifar10_{split}.npz has no per-image 'names'")
        names = np.array(ds.filenames)
        idx = first_per_class(ds.labels, names, per_class)
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_names"] = names[idx]
    write_npz_lzma(out, **arrays)


if __name__ == "__main__":
    build_cifar10_subset(sys.argv[1], sys.argv[2])
