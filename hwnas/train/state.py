"""Training checkpoints: big tensors in safetensors, everything else in JSON; nothing is unpickled.

A checkpoint is a folder holding
- ``state-<step>.safetensors``: model, teacher and optimiser tensors (written by rank 0),
- ``rank<r>-<step>.json``: what differs between ranks — the loader position and augmentation
  generator, the torch RNG states — one file per rank,
- ``state.json``: phase, step, sampler state, run identity, and the names and SHA-256 of the files
  above. It is written last, by rank 0, after every rank has written its own file: it is the commit
  point, so a kill at any moment leaves the previous checkpoint whole and loadable.
Small tensors inside JSON (generator states) are stored as base64 with their dtype and shape.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save

from ..atomic import read_json, write_bytes_atomic, write_json_atomic

FORMAT = "hwnas-train-state"
FORMAT_VERSION = 2
_TENSOR = "__tensor__"


def encode_tensors(value: Any) -> Any:
    """``value`` as plain JSON: every tensor (at any depth in dicts, lists, tuples) becomes a base64 record."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().contiguous().numpy()
        return {_TENSOR: {"dtype": str(array.dtype), "shape": list(array.shape),
                          "data": base64.b64encode(array.tobytes()).decode("ascii")}}
    if isinstance(value, dict):
        return {str(k): encode_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_tensors(v) for v in value]
    return value


def decode_tensors(value: Any) -> Any:
    """Inverse of :func:`encode_tensors` (tuples come back as lists)."""
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            record = value[_TENSOR]
            array = np.frombuffer(base64.b64decode(record["data"]), dtype=np.dtype(record["dtype"]))
            return torch.from_numpy(array.reshape(record["shape"]).copy())
        return {k: decode_tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_tensors(v) for v in value]
    return value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rank_file(step: int, rank: int) -> str:
    return f"rank{rank}-{step:09d}.json"


def save_rank_state(folder: str | os.PathLike[str], step: int, rank: int, state: dict[str, Any]) -> Path:
    """Write one rank's own state for ``step`` (call on every rank before :func:`commit_state`)."""
    return write_json_atomic(Path(folder) / rank_file(step, rank), encode_tensors(state))


def commit_state(folder: str | os.PathLike[str], step: int, world_size: int, tensors: dict[str, torch.Tensor],
                 meta: dict[str, Any]) -> Path:
    """Rank 0, after every rank's :func:`save_rank_state`: write the tensors and the index, drop older files."""
    folder = Path(folder)
    name = f"state-{step:09d}.safetensors"
    write_bytes_atomic(folder / name, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
    files = [name] + [rank_file(step, rank) for rank in range(world_size)]
    index = write_json_atomic(folder / "state.json", {
        "format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "world_size": world_size,
        "files": {file: _sha256(folder / file) for file in files}, **meta,
    })
    for old in (*folder.glob("state-*.safetensors"), *folder.glob("rank*-*.json")):
        if old.name not in files:
            old.unlink(missing_ok=True)
    return index


def momentum_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimiser's momentum buffers as checkpoint tensors, ``optim.<param index>.momentum_buffer``."""
    return {f"optim.{index}.momentum_buffer": state["momentum_buffer"]
            for index, state in optimizer.state_dict()["state"].items() if state.get("momentum_buffer") is not None}


def load_momentum(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put the buffers :func:`momentum_tensors` saved (found among ``tensors``) back into a fresh ``optimizer``."""
    state = optimizer.state_dict()
    state["state"] = {int(k.split(".")[1]): {"momentum_buffer": v.to(device)} for k, v in tensors.items()
                      if k.startswith("optim.")}
    optimizer.load_state_dict(state)


def load_state(folder: str | os.PathLike[str], rank: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(tensors, meta, rank_state)`` of the checkpoint in ``folder``; ValueError naming the file if unusable."""
    folder = Path(folder)
    index = folder / "state.json"
    try:
        meta = read_json(index)
    except FileNotFoundError:
        raise ValueError(f"{index}: no training checkpoint to resume from") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{index}: not an hwnas training checkpoint of format version {FORMAT_VERSION}")
    files: dict[str, str] = meta["files"]
    for file, digest in files.items():
        path = folder / file
        if not path.is_file():
            raise ValueError(f"{path}: file named by {index} is missing")
        if _sha256(path) != digest:
            raise ValueError(f"{path}: does not match its SHA-256 in {index} (damaged or edited)")
    tensor_file = next(file for file in files if file.endswith(".safetensors"))
    own = rank_file(meta["step"], rank)
    if own not in files:
        raise ValueError(f"{index}: holds no state for rank {rank} (saved with world_size={meta['world_size']})")
    # clone: fresh, aligned allocations, so that resumed arithmetic is bit-identical
    tensors = {k: v.clone() for k, v in load((folder / tensor_file).read_bytes()).items()}
    rank_state = decode_tensors(read_json(folder / own))
    return tensors, meta, rank_state
