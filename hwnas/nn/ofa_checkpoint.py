"""OFA's pretrained MobileNetV3 supernets (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``) as hwnas supernets.

hwnas's :class:`OFAMobileNetV3` computes what OFA's does, op for op, so importing a checkpoint is a renaming of
its tensors: OFA's ``first_conv`` is hwnas's ``stem``, its ``blocks.0`` (the fixed first block) is
``first_block``, its ``blocks.i`` is hwnas's ``blocks.{i-1}``, its ``final_expand_layer`` /
``feature_mix_layer`` / ``classifier`` are ``head.0`` / ``head.2`` / ``head.3``, and inside a block
``inverted_bottleneck`` / ``depth_conv`` / ``se`` / ``point_linear`` are ``expand`` / ``dw`` / ``se`` /
``project``. Nothing is guessed: every tensor of the file must map to one of the supernet's with the same
shape and every supernet tensor must be filled (BatchNorm's ``num_batches_tracked`` counter excepted, which
some checkpoints drop), else a ``ValueError`` names the file and the first tensor that does not fit.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, never objects.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..space.mbv3 import MobileNetV3Space
from ..space.registry import get_space
from .supernet import OFAMobileNetV3

# OFA's ImageNet normalisation (its data provider) and default input size
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_RESOLUTION = 224
# how an ImageFolder's train/ serves an imported supernet: 80% held out (BN recalibration, then validation)
IMAGEFOLDER_SPLIT = {"holdout": 0.8, "seed": 0, "bn_images": 2000}

_BLOCK_PARTS = [  # OFA's name inside an elastic block -> hwnas's
    (r"conv\.inverted_bottleneck\.conv\.conv\.weight", "expand_conv.weight"),
    (r"conv\.inverted_bottleneck\.bn\.bn\.(\w+)", r"expand_bn.\1"),
    (r"conv\.depth_conv\.conv\.conv\.weight", "dw_conv.weight"),
    (r"conv\.depth_conv\.conv\.(\dto\d_matrix)", r"dw_conv.\1"),
    (r"conv\.depth_conv\.bn\.bn\.(\w+)", r"dw_bn.\1"),
    (r"conv\.depth_conv\.se\.fc\.reduce\.(weight|bias)", r"se_reduce.\1"),
    (r"conv\.depth_conv\.se\.fc\.expand\.(weight|bias)", r"se_expand.\1"),
    (r"conv\.point_linear\.conv\.conv\.weight", "project_conv.weight"),
    (r"conv\.point_linear\.bn\.bn\.(\w+)", r"project_bn.\1"),
]
_FIXED_PARTS = [  # the static layers around the blocks
    (r"first_conv\.conv\.weight", "stem.conv.weight"),
    (r"first_conv\.bn\.(\w+)", r"stem.bn.\1"),
    (r"blocks\.0\.conv\.depth_conv\.conv\.weight", "first_block.dw_conv.weight"),
    (r"blocks\.0\.conv\.depth_conv\.bn\.(\w+)", r"first_block.dw_bn.\1"),
    (r"blocks\.0\.conv\.point_linear\.conv\.weight", "first_block.project_conv.weight"),
    (r"blocks\.0\.conv\.point_linear\.bn\.(\w+)", r"first_block.project_bn.\1"),
    (r"final_expand_layer\.conv\.weight", "head.0.conv.weight"),
    (r"final_expand_layer\.bn\.(\w+)", r"head.0.bn.\1"),
    (r"feature_mix_layer\.conv\.weight", "head.2.conv.weight"),
    (r"classifier\.linear\.(weight|bias)", r"head.3.linear.\1"),
]
_OPTIONAL = re.compile(r".*\.num_batches_tracked$")


def hwnas_name(ofa_name: str) -> str | None:
    """The hwnas supernet tensor an OFA tensor name maps to, or None when it is not an OFAMobileNetV3 name."""
    for pattern, target in _FIXED_PARTS:
        if re.fullmatch(pattern, ofa_name):
            return re.sub(pattern, target, ofa_name)
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", ofa_name)
    if match and int(match.group(1)) >= 1:
        for pattern, target in _BLOCK_PARTS:
            if re.fullmatch(pattern, match.group(2)):
                return f"blocks.{int(match.group(1)) - 1}." + re.sub(pattern, target, match.group(2))
    return None


def read_ofa_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of an OFA checkpoint: a dict holding ``state_dict`` (OFA's format) or a bare state dict,
    with a ``module.`` prefix (a DataParallel save) dropped. ``ValueError`` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OFA checkpoint")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, not a torch file, or objects weights_only refuses
        raise ValueError(f"{path}: not a readable PyTorch checkpoint of tensors "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path}: holds no state dict (expected {{'state_dict': {{name: tensor}}}} or {{name: tensor}})")
    bad = next((name for name, value in state.items() if not isinstance(value, torch.Tensor)), None)
    if bad is not None:
        raise ValueError(f"{path}: entry {bad!r} of the state dict is a {type(state[bad]).__name__}, not a tensor")
    names = list(state)
    if all(name.startswith("module.") for name in names):
        return {name[len("module."):]: state[name] for name in names}
    return dict(state)


def import_ofa_supernet(path: str | os.PathLike[str], space: str | MobileNetV3Space = "ofa-mbv3-w1.2",
                        num_classes: int | None = None) -> OFAMobileNetV3:
    """OFA's checkpoint at ``path`` loaded into hwnas's supernet of ``space`` (``ofa-mbv3-w1.0`` or ``-w1.2``).

    ``num_classes`` defaults to the classifier's rows in the file (1000 for OFA's ImageNet supernets)."""
    path = Path(path)
    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, MobileNetV3Space):
        raise ValueError(f"space {space.name!r} is not a MobileNetV3 space; OFA checkpoints are OFAMobileNetV3")
    state = read_ofa_state_dict(path)
    mapped: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}  # hwnas name -> the OFA name it came from, for error messages
    for name, tensor in state.items():
        target = hwnas_name(name)
        if target is None:
            raise ValueError(f"{path}: tensor {name!r} {tuple(tensor.shape)} is not part of an OFAMobileNetV3 "
                             "supernet (is this another network's checkpoint, e.g. ProxylessNAS or ResNet?)")
        mapped[target], source_of[target] = tensor, name
    classes = num_classes
    if classes is None:
        if "head.3.linear.weight" not in mapped:
            raise ValueError(f"{path}: has no classifier (classifier.linear.weight)")
        classes = int(mapped["head.3.linear.weight"].shape[0])
    net = OFAMobileNetV3(space, num_classes=classes).eval()
    expected = net.state_dict()
    for target, tensor in mapped.items():
        source = source_of[target]
        if target not in expected:
            raise ValueError(f"{path}: tensor {source!r} maps to {target!r}, which space {space.name!r} does not have "
                             "(a supernet with more blocks?)")
        if tuple(tensor.shape) != tuple(expected[target].shape):
            raise ValueError(f"{path}: tensor {source!r} has shape {tuple(tensor.shape)}, but space {space.name!r} "
                             f"needs {tuple(expected[target].shape)} (another width multiplier or class count?)")
    missing = [name for name in expected if name not in mapped and not _OPTIONAL.match(name)]
    if missing:
        raise ValueError(f"{path}: lacks {len(missing)} tensor(s) space {space.name!r} needs, first {missing[0]!r} "
                         f"{tuple(expected[missing[0]].shape)}")
    full = {name: mapped.get(name, expected[name]).to(expected[name].dtype).clone() for name in expected}
    net.load_state_dict(full, strict=True)
    net.set_active(space.max_arch())
    return net.eval()


def ofa_extra(path: str | os.PathLike[str], num_classes: int, resolution: int = DEFAULT_RESOLUTION,
              data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``extra`` metadata an imported supernet carries: where it came from, OFA's ImageNet normalisation and
    default input size, class names (indices: OFA's checkpoints hold none), and the data to evaluate it on —
    ImageNet in a folder given later (``--data-dir``) when ``data`` is None, never the defaults of a supernet
    hwnas trained (the shipped CIFAR-10 subset)."""
    extra: dict[str, Any] = {
        "imported_from": {"format": "ofa", "file": Path(path).name},
        "preprocessing": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "input_size": int(resolution), "classes": [str(i) for i in range(num_classes)],
        "dataset": "imagenet",
    }
    extra["data"] = dict(data) if data is not None else {"name": "imagenet", "data_dir": None, **IMAGEFOLDER_SPLIT}
    return extra
