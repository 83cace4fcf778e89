"""In-memory image datasets read from local files: ``.npz`` archives, ImageFolder trees, CIFAR-10 python batches.

Every loader returns an :class:`ImageDataset`: uint8 images N×H×W×C (HWC, C = 1 or 3), int64 labels and
class names. Nothing is downloaded and nothing is unpickled (CIFAR batches go through a restricted unpickler).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.data.cifar import read_cifar10_batches
from hwnas.data.png import decode_png

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(i) for i in range(10))
ASSETS = Path(__file__).with_name("assets")
SUBSET_FILE = ASSETS / "cifar10_subset.npz"
DATASET_KINDS = ("npz", "imagefolder", "cifar10-batches")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".npy")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images kept whole in memory: ``images`` uint8 N×H×W×C, ``labels`` int64 N, ``classes`` in label order."""

    images: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    name: str = "dataset"
    filenames: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name}: images must be uint8 N×H×W×C with C in (1, 3), got "
                             f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (len(images),):
            raise ValueError(f"{self.name}: labels must be int64 of shape ({len(images)},), got "
                             f"{getattr(labels, 'dtype', type(labels))} {getattr(labels, 'shape', '')}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{self.name}: labels must lie in [0, {len(self.classes)}), got [{labels.min()}, {labels.max()}]")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"ImageDataset({self.name!r}, n={len(self)}, shape={tuple(self.images.shape[1:])}, classes={len(self.classes)})"

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageDataset:
        idx = np.asarray(indices, dtype=np.int64)
        files = None if self.filenames is None else tuple(self.filenames[i] for i in idx)
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, name or self.name, files)


def _as_nhwc(images: np.ndarray, where: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: 'images' must be uint8, got {images.dtype}")
    if images.ndim == 3:  # greyscale N×H×W (MNIST)
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: 'images' must be N×H×W or N×H×W×C with C in (1, 3), got shape {images.shape}")
    return images


def _as_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"{where}: {n} images but {len(labels)} labels")
    if n and labels.min() < 0:
        raise ValueError(f"{where}: negative label {labels.min()}")
    return labels.astype(np.int64)


def _default_classes(stem: str, num: int) -> tuple[str, ...]:
    if stem.startswith("cifar10") and num <= 10:
        return CIFAR10_CLASSES
    if stem.startswith("mnist") and num <= 10:
        return MNIST_CLASSES
    return tuple(str(i) for i in range(num))


def load_npz(path: str | Path, name: str | None = None) -> ImageDataset:
    """``.npz`` with uint8 ``images`` (N×H×W[×C]) and integer ``labels``; optional ``classes`` (class names)
    and ``names`` (per-image file names, as in ../shared/data). Read with ``allow_pickle=False``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(z.files) or 'none'})")
            images, labels = z["images"], z["labels"]
            classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else None
            names = tuple(str(c) for c in z["names"]) if "names" in z.files else None
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    images = _as_nhwc(images, str(path))
    labels = _as_labels(labels, len(images), str(path))
    num = int(labels.max()) + 1 if len(labels) else 0
    if classes is None:
        classes = _default_classes(path.stem, num)
    elif len(classes) < num:
        raise ValueError(f"{path}: {len(classes)} class names but labels reach {num - 1}")
    if names is not None and len(names) != len(images):
        names = None  # not per-image file names
    return ImageDataset(np.ascontiguousarray(images), labels, classes, name or path.stem, names)


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            img = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    else:
        try:
            from PIL import Image  # optional: faster, and needed for JPEG/BMP
        except ImportError:
            if path.suffix.lower() != ".png":
                raise ValueError(f"{path}: decoding {path.suffix} needs Pillow; only PNG and .npy are built in") from None
            img = decode_png(path)
        else:
            try:
                with Image.open(path) as im:
                    img = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
            except (OSError, ValueError, SyntaxError) as exc:
                raise ValueError(f"{path}: cannot decode image ({exc})") from None
    if img.ndim == 2:
        img = img[..., None]
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"{path}: expected a uint8 H×W[×C] image, got {img.dtype} {img.shape}")
    if img.shape[-1] in (2, 4):  # drop alpha
        img = img[..., :-1] if img.shape[-1] == 4 else img[..., :1]
    return img


def load_image_folder(root: str | Path, name: str | None = None) -> ImageDataset:
    """``root/<class>/<image>``: one sub-folder per class (sorted names = label order), images PNG (built-in
    decoder, or Pillow when installed, which adds JPEG/BMP) or ``.npy`` uint8 H×W×C arrays. All images must
    share one shape; nothing is resized at load time."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class sub-folders")
    images, labels, files = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                img = _read_image(f)
                if images and img.shape != images[0].shape:
                    raise ValueError(f"{f}: shape {img.shape} differs from {files[0]} {images[0].shape}")
                images.append(img)
                labels.append(label)
                files.append(f"{cls}/{f.name}")
    if not images:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return ImageDataset(np.stack(images), np.asarray(labels, np.int64), tuple(classes), name or root.name, tuple(files))


def load_cifar10_batches(root: str | Path, split: str = "train") -> ImageDataset:
    """The CIFAR-10 "python version" folder (``cifar-10-batches-py``); see :mod:`hwnas.data.cifar`."""
    images, labels, classes = read_cifar10_batches(root, split)
    return ImageDataset(images, labels, classes or CIFAR10_CLASSES, f"cifar10-{split}")


def load_dataset(kind: str, path: str | Path, split: str = "train") -> ImageDataset:
    """Load a local dataset. ``kind``: 'npz' (one archive), 'imagefolder' (class sub-folders) or
    'cifar10-batches' (python batches; ``split`` picks train or test)."""
    if kind == "npz":
        return load_npz(path)
    if kind == "imagefolder":
        return load_image_folder(path)
    if kind in ("cifar10-batches", "cifar"):
        return load_cifar10_batches(path, split)
    raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}")


def get_dataset(name: str = "cifar10", data_dir: str | Path | None = None, split: str = "train") -> ImageDataset:
    """A named dataset's ``split`` ('train' or 'test').

    ``data_dir`` None: the CIFAR-10 subset shipped in the package (500 train + 200 test images per class).
    Otherwise the first of: ``data_dir/<name>_<split>.npz`` (../shared/data layout), CIFAR-10 python
    batches in ``data_dir`` or ``data_dir/cifar-10-batches-py``, an ImageFolder at ``data_dir/<split>``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_dir is None:
        if name != "cifar10":
            raise ValueError(f"no shipped subset for {name!r}; pass data_dir (only 'cifar10' ships with hwnas)")
        return _shipped_subset(split)
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: data directory does not exist")
    npz = root / f"{name}_{split}.npz"
    if npz.is_file():
        return load_npz(npz, name=f"{name}-{split}")
    for batches in (root, root / "cifar-10-batches-py"):
        if (batches / "test_batch").is_file() or (batches / "data_batch_1").is_file():
            return load_cifar10_batches(batches, split)
    if (root / split).is_dir():
        return load_image_folder(root / split, name=f"{name}-{split}")
    raise ValueError(f"{root}: found no {npz.name}, no CIFAR-10 python batches and no ImageFolder '{split}/' sub-folder")


def _shipped_subset(split: str) -> ImageDataset:
    if not SUBSET_FILE.is_file():
        raise ValueError(f"{SUBSET_FILE}: the shipped CIFAR-10 subset is missing from this installation")
    with np.load(SUBSET_FILE, allow_pickle=False) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"].astype(np.int64)
        classes = tuple(str(c) for c in z["classes"])
        names = tuple(str(c) for c in z[f"{split}_names"])
    return ImageDataset(images, labels, classes, f"cifar10-subset-{split}", names)


def split_indices(labels: np.ndarray, holdout: float | int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class-stratified, deterministic split of ``range(len(labels))`` into sorted (train, holdout) indices.

    ``holdout`` is a fraction in (0, 1) or a count. Each class gives its share (largest-remainder rounding,
    so the total is exact); which members go is drawn from ``numpy.random.default_rng(seed)``. The two index
    sets partition the input: the holdout never overlaps train.
    """
    labels = np.asarray(labels)
    n = len(labels)
    count = round(holdout * n) if isinstance(holdout, float) else int(holdout)
    if isinstance(holdout, float) and not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {holdout}")
    if not 0 < count < n:
        raise ValueError(f"holdout count must be in [1, {n - 1}] for {n} samples, got {count}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (count / n)
    take = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - take)))  # largest remainder first, ties by class
    take[order[: count - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    hold = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    hold_idx = np.sort(np.concatenate(hold))
    mask = np.ones(n, dtype=bool)
    mask[hold_idx] = False
    return np.flatnonzero(mask), hold_idx


def split_holdout(dataset: ImageDataset, holdout: float | int = 0.1, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """(train, holdout) datasets: the holdout (for BN recalibration and the accuracy predictor) is class-stratified,
    the same for the same (dataset, holdout, seed), and disjoint from train. See :func:`split_indices`."""
    train_idx, hold_idx = split_indices(dataset.labels, holdout, seed)
    return dataset.subset(train_idx, f"{dataset.name}-train"), dataset.subset(hold_idx, f"{dataset.name}-holdout")
