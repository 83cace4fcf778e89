"""The images a supernet is judged on: its training run's holdout split (BN recalibration + validation)
and the test split, rebuilt from the ``data_source`` the run recorded so that search and export
evaluate on exactly the images training set aside."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data.datasets import ImageDataset, get_dataset, split_holdout
from .preprocessing import Preprocessing

# what a checkpoint without a recorded data source is assumed to have been trained on (hwnas train's defaults)
DEFAULT_DATA_SOURCE = {"name": "cifar10", "data_dir": None, "holdout": 0.1, "seed": 0, "bn_images": 2000}


@dataclass(frozen=True)
class EvalData:
    """The holdout split in two: images for BN recalibration and images to validate on; plus the test set."""

    calibration: ImageDataset
    validation: ImageDataset
    test: ImageDataset
    preprocessing: Preprocessing
    name: str  # the dataset's, e.g. cifar10-train


def load_eval_data(source: dict[str, Any], data_dir: str | None = None) -> tuple[EvalData, ImageDataset]:
    """The holdout (BN part, validation part) and test set of a training run, from its ``data_source``;
    ``data_dir`` overrides the recorded folder (the data moved). Also returns the training split."""
    folder = data_dir if data_dir is not None else source["data_dir"]
    train_all = get_dataset(source["name"], folder, "train")
    test = get_dataset(source["name"], folder, "test")
    if test.classes != train_all.classes:
        raise ValueError(f"train and test splits disagree on classes: {train_all.classes} vs {test.classes}")
    train, holdout = split_holdout(train_all, source["holdout"], seed=source["seed"])
    calibration, validation = _split_for_eval(holdout, source["bn_images"])
    return EvalData(calibration, validation, test, Preprocessing.of(train), train_all.name), train


def _split_for_eval(holdout: ImageDataset, bn_images: int) -> tuple[ImageDataset, ImageDataset]:
    """First ``min(bn_images, half)`` holdout images recalibrate BN; the rest validate."""
    n = min(bn_images, len(holdout) // 2)
    if n < 1:
        raise ValueError(f"the holdout split has {len(holdout)} images; need at least 2 (raise --holdout)")
    return holdout.subset(range(n), f"{holdout.name}-bn"), holdout.subset(range(n, len(holdout)), f"{holdout.name}-val")
