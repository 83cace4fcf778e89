"""The model zoo: trained supernets shipped with their accuracy predictor, metadata, record and model card.

``hwnas.zoo.load("tiny-mbv3-cifar10")`` finds ``zoo/tiny-mbv3-cifar10/`` and checks it (hashes, space, class
count); the command line takes a zoo name wherever it takes a supernet file. ``hwnas zoo build`` makes an
entry from a finished training run (:mod:`hwnas.zoo.build`).
"""
from .entry import ZooModel, list_models, load, resolve_supernet, resolve_zoo, zoo_root

__all__ = ["ZooModel", "list_models", "load", "resolve_supernet", "resolve_zoo", "zoo_root"]
