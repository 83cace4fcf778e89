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


def random_per_class(labels: np.ndarray, names: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``per_class`` indices of every class drawn uniformly with ``numpy.random.default_rng(seed)``, sorted by
    (class, file name).

    Uniform, not "the first N names": CIFAR-10's file names are WordNet sub-category names
    (``aeroplane_s_000002.png``), so the first names of a class cover a few sub-categories only (68 of the test
    split's 356) and that subset measured 2-3 points harder than the whole test split.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, {per_class} requested")
        chosen = rng.choice(members, per_class, replace=False)
        picked.append(chosen[np.argsort(names[chosen].astype(bytes), kind="stable")])
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


def build_cifar10_subset(src_dir: str | Path, out: str | Path, train_per_class: int = 500, test_per_class: int = 200,
                         seed: int = 0) -> None:
    """Draw N images per class from ``cifar10_{train,test}.npz`` (:func:`random_per_class`) and write one archive
    with ``{train,test}_{images,labels,names}`` and ``classes``."""
    arrays: dict[str, np.ndarray] = {"classes": np.array(CIFAR10_CLASSES)}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        ds = load_npz(Path(src_dir) / f"cifar10_{split}.npz")
        if ds.filenames is None:
            raise ValueError(f"{src_dir}: cifar10_{split}.npz has no per-image 'names'")
        names = np.array(ds.filenames)
        idx = random_per_class(ds.labels, names, per_class, seed)
        arrays[f"{split}_images"] = ds.images[idx]
        arrays[f"{split}_labels"] = ds.labels[idx].astype(np.uint8)
        arrays[f"{split}_names"] = names[idx]
    write_npz_lzma(out, **arrays)


if __name__ == "__main__":
    build_cifar10_subset(sys.argv[1], sys.argv[2])
