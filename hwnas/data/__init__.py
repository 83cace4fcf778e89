"""Datasets from local files (npz, ImageFolder, CIFAR-10 python batches), stratified holdout, batch transforms
and an exactly resumable in-memory batch loader. Ships a small CIFAR-10 subset for offline demos."""

from hwnas.data.datasets import (
    CIFAR10_CLASSES,
    SUBSET_FILE,
    ImageDataset,
    get_dataset,
    load_cifar10_batches,
    load_dataset,
    load_image_folder,
    load_npz,
    split_holdout,
    split_indices,
)
from hwnas.data.loader import BatchLoader
from hwnas.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST_MEAN,
    MNIST_STD,
    EvalTransform,
    TrainTransform,
    normalize,
    random_crop,
    random_hflip,
    resize,
    to_tensor_nchw,
)

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "MNIST_MEAN", "MNIST_STD", "SUBSET_FILE",
    "BatchLoader", "EvalTransform", "ImageDataset", "TrainTransform",
    "get_dataset", "load_cifar10_batches", "load_dataset", "load_image_folder", "load_npz",
    "normalize", "random_crop", "random_hflip", "resize", "split_holdout", "split_indices", "to_tensor_nchw",
]
