"""Supernet checkpoints: exact round trip, atomic writes, clear refusal of damaged or foreign files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hwnas import get_space
from hwnas.nn import OFAMobileNetV3, load_supernet, save_supernet


@pytest.fixture(scope="module")
def net() -> OFAMobileNetV3:
    torch.manual_seed(0)
    net = OFAMobileNetV3(get_space("tiny-mbv3", resolutions=(24, 32)), num_classes=7, dropout=0.1)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.1 * torch.randn_like(tensor))
    return net.eval()


@pytest.fixture
def saved(net: OFAMobileNetV3, tmp_path: Path) -> Path:
    path = tmp_path / "supernet.safetensors"
    save_supernet(net, path)
    return path


def test_round_trip_reproduces_the_supernet_exactly(net: OFAMobileNetV3, saved: Path) -> None:
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left behind
    loaded = load_supernet(saved).eval()
    assert loaded.space.content_hash == net.space.content_hash and loaded.space.resolutions == (24, 32)
    assert (loaded.num_classes, loaded.dropout) == (7, 0.1)
    for key, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    arch = net.space.sample(3)
    x = torch.randn(2, 3, arch.r, arch.r)
    net.set_active(arch)
    loaded.set_active(arch)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
        assert torch.equal(loaded.extract()(x), net.extract()(x))


def test_save_overwrites_atomically(net: OFAMobileNetV3, saved: Path) -> None:
    save_supernet(net, saved)
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    assert load_supernet(saved).space.content_hash == net.space.content_hash


def rewrite(path: Path, **changes: str) -> None:
    """Rewrite a checkpoint with some metadata fields changed (tensors untouched)."""
    with safe_open(str(path), framework="pt") as reader:
        metadata = {**reader.metadata(), **changes}
        names = reader.keys()
        tensors = {name: reader.get_tensor(name) for name in names}
    save_file(tensors, str(path), metadata=metadata)


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "not a readable safetensors file"),
    (lambda p: p.write_bytes(b"\x00" * 64), "not a readable safetensors file"),
    (flip_last_byte, "checksum"),
    (lambda p: save_file({"w": torch.zeros(2)}, str(p)), "not an hwnas supernet"),
    (lambda p: rewrite(p, format_version="99"), "format_version='99' is not supported"),
    (lambda p: rewrite(p, space_hash="0" * 16), "hashes to"),
    (lambda p: rewrite(p, space_config="{not json"), "malformed checkpoint metadata"),
    (lambda p: rewrite(p, space_config=json.dumps({"family": "resnet"})), "family 'resnet'"),
])
def test_damaged_or_foreign_files_raise_value_error_naming_the_file(saved: Path, damage, reason: str) -> None:
    damage(saved)
    with pytest.raises(ValueError, match=reason) as error:
        load_supernet(saved)
    assert str(saved) in str(error.value)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_supernet(tmp_path / "absent.safetensors")
