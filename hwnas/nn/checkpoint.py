"""Supernet checkpoints: safetensors weights plus the space they belong to (never pickle).

Metadata strings: ``format``/``format_version``, the space's name, config JSON and content hash,
``num_classes``, ``dropout`` and a SHA-256 of the tensor bytes, so that a foreign, edited or damaged
file is refused with a ``ValueError`` naming the file instead of loading wrong weights. ``extra`` holds
what the trainer knows and deployment needs (input normalisation, class names, the training data) as
JSON; :func:`supernet_extra` reads it without loading the weights.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..atomic import write_bytes_atomic
from ..space.mbv3 import MobileNetV3Space
from .supernet import OFAMobileNetV3

FORMAT = "hwnas-supernet"
FORMAT_VERSION = "1"


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors, in name order."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return sha.hexdigest()


def save_supernet(net: OFAMobileNetV3, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> None:
    """Write ``net``'s weights and space to ``path`` atomically (temp file + rename), with ``extra`` as JSON."""
    path = Path(path)
    tensors = {name: tensor.detach().contiguous() for name, tensor in net.state_dict().items()}
    space = net.space
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "space": space.name,
        "space_config": json.dumps(space.config(), sort_keys=True), "space_hash": space.content_hash,
        "num_classes": str(net.num_classes), "dropout": repr(net.dropout), "sha256": _digest(tensors),
        "extra": json.dumps(dict(extra or {}), sort_keys=True, allow_nan=False),
    }
    write_bytes_atomic(path, save(tensors, metadata=metadata))


def load_supernet(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> OFAMobileNetV3:
    """Load a supernet written by :func:`save_supernet` onto ``device``.

    Raises ``ValueError`` naming the file when it is not a readable safetensors file, is not an hwnas
    supernet of a supported format version, or its space, hash, checksum or tensors do not agree.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as reader:
            metadata = reader.metadata() or {}
            names = reader.keys()
            # Fresh allocations: tensors read at arbitrary file offsets are misaligned, and CPU kernels
            # take other code paths (other rounding) on misaligned weights; outputs must reproduce exactly.
            tensors = {name: reader.get_tensor(name).clone() for name in names}
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not an hwnas supernet checkpoint (format={metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version={metadata.get('format_version')!r} is not supported; "
                         f"this hwnas reads {FORMAT_VERSION!r}")
    try:
        space = MobileNetV3Space.from_config(metadata["space"], json.loads(metadata["space_config"]))
        num_classes, dropout = int(metadata["num_classes"]), float(metadata["dropout"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: malformed checkpoint metadata ({type(error).__name__}: {error})") from None
    if space.content_hash != metadata.get("space_hash"):
        raise ValueError(f"{path}: space {space.name!r} hashes to {space.content_hash}, "
                         f"but the file records {metadata.get('space_hash')!r}")
    if _digest(tensors) != metadata.get("sha256"):
        raise ValueError(f"{path}: tensor data does not match its SHA-256 checksum (file damaged or edited)")
    with torch.device("meta"):
        net = OFAMobileNetV3(space, num_classes, dropout)
    try:
        net.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit space {space.name!r}: {error}") from None
    return net


def supernet_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` dict stored by :func:`save_supernet` (empty for files written without it)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not an hwnas supernet checkpoint (format={metadata.get('format')!r})")
    try:
        extra = json.loads(metadata.get("extra", "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed 'extra' metadata ({error})") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: 'extra' metadata is not a JSON object")
    return extra
