"""The images a supernet is judged on: its training run's holdout split (BN recalibration + validation)
and the test split, rebuilt from the ``data_source`` the run recorded so that search and export
evaluate on exactly the images training set aside."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data.datasets import ImageDataset, get_dataset, split_holdout, split_indices
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
    held_out: bool = True  # False: the validation images may have been trained on (a zoo model on the shipped subset)


def load_eval_data(source: dict[str, Any], data_dir: str | None = None,
                   preprocessing: Preprocessing | None = None) -> tuple[EvalData, ImageDataset]:
    """The holdout (BN part, validation part) and test set of a training run, from its ``data_source``;
    ``data_dir`` overrides the recorded folder (the data moved). Also returns the training split.

    ``preprocessing`` is the normalisation the supernet was trained with (what its checkpoint recorded): a
    network evaluated on other data than it trained on (a zoo model on the shipped subset) still sees its
    own mean/std. None: computed from the training split, which is the training run's own when the data is."""
    folder = data_dir if data_dir is not None else source["data_dir"]
    train_all = get_dataset(source["name"], folder, "train")
    test = get_dataset(source["name"], folder, "test")
    if test.classes != train_all.classes:
        raise ValueError(f"train and test splits disagree on classes: {train_all.classes} vs {test.classes}")
    train, holdout = split_holdout(train_all, source["holdout"], seed=source["seed"])
    calibration, validation = _split_for_eval(holdout, source["bn_images"], seed=source["seed"])
    return EvalData(calibration, validation, test, preprocessing or Preprocessing.of(train), train_all.name), train


def _split_for_eval(holdout: ImageDataset, bn_images: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """``min(bn_images, half)`` holdout images recalibrate BN; the rest validate.

    The calibration part is class-stratified and in a seeded random order, because datasets often come
    sorted by class (the shipped subset, every ImageFolder): taking the first images would calibrate on
    some classes only and validate on the others, and BN recalibration averages per-batch statistics, so
    single-class batches would understate the variance. Both were measured on the shipped subset: the
    zoo supernet's largest subnet lost 3.7 points of test accuracy to them.
    """
    n = min(bn_images, len(holdout) // 2)
    if n < 1:
        raise ValueError(f"the holdout split has {len(holdout)} images; need at least 2 (raise --holdout)")
    rest, picked = split_indices(holdout.labels, n, seed)
    mixed = np.random.default_rng(seed).permutation(picked)
    return holdout.subset(mixed, f"{holdout.name}-bn"), holdout.subset(rest, f"{holdout.name}-val")


def recorded_preprocessing(extra: dict[str, Any]) -> Preprocessing | None:
    """The normalisation a checkpoint's ``extra`` recorded (``hwnas.nn.checkpoint.supernet_extra``); None if none."""
    value = extra.get("preprocessing")
    return None if value is None else Preprocessing.from_dict(value)


def checkpoint_eval_data(extra: dict[str, Any], data_dir: str | None = None,
                         data: dict[str, Any] | None = None) -> tuple[EvalData, ImageDataset]:
    """:func:`load_eval_data` for a supernet checkpoint from its ``extra`` (``supernet_extra``): the data
    source it recorded (``data`` overrides it; :data:`DEFAULT_DATA_SOURCE` fills what is missing) and the
    normalisation it was trained with.

    A zoo checkpoint records two sources: ``data``, the shipped subset every user has, and ``training_data``,
    the split it was trained on. The shipped training images were drawn from the same training set, so
    most of them were trained on: they serve BN recalibration, but a validation on them is not held out
    (``held_out=False``). Given ``data_dir`` (the full dataset is here), the training split is rebuilt
    instead and its validation images are the ones training set aside."""
    training = extra.get("training_data")
    if data is None and training and data_dir is not None:
        source = {**DEFAULT_DATA_SOURCE, **training}
        return load_eval_data(source, data_dir, recorded_preprocessing(extra))
    source = {**DEFAULT_DATA_SOURCE, **(data or extra.get("data") or {})}
    eval_data, train = load_eval_data(source, data_dir, recorded_preprocessing(extra))
    if data is None and training and source != {**DEFAULT_DATA_SOURCE, **training}:
        eval_data = replace(eval_data, held_out=False)
    return eval_data, train

