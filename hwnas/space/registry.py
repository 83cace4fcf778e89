"""Named search spaces: ``get_space("ofa-mbv3-w1.2")``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import SearchSpace
from .mbv3 import MobileNetV3Space

_FACTORIES: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str, factory: Callable[..., SearchSpace]) -> None:
    """Make ``factory(**overrides)`` available as ``get_space(name, **overrides)``."""
    if name in _FACTORIES:
        raise ValueError(f"search space {name!r} is already registered")
    _FACTORIES[name] = factory


def list_spaces() -> list[str]:
    return sorted(_FACTORIES)


def get_space(name: str, **overrides: Any) -> SearchSpace:
    """A registered space; keyword overrides (e.g. ``resolutions=``, ``num_classes=``) change it."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown search space {name!r}; registered: {list_spaces()}")
    return _FACTORIES[name](**overrides)


def _ofa_mbv3(width_mult: float) -> Callable[..., SearchSpace]:
    def factory(**overrides: Any) -> SearchSpace:
        return MobileNetV3Space(**{"name": f"ofa-mbv3-w{width_mult}", "width_mult": width_mult, **overrides})
    return factory


def _tiny_mbv3(**overrides: Any) -> SearchSpace:
    """OFA's block family for CIFAR-sized images: stride-1 stem, strides 2,2,1,2,1, narrow widths.

    Sized so that CPU training stays practical (max subnet ≈ 34 M MACs at 32 px, min ≈ 7 M).
    """
    settings: dict[str, Any] = {
        "name": "tiny-mbv3", "width_mult": 1.0, "base_widths": (16, 16, 16, 24, 40, 64, 96, 384, 512),
        "stem_stride": 1, "stage_strides": (2, 2, 1, 2, 1), "resolutions": (24, 32, 40), "num_classes": 10,
    }
    settings.update(overrides)
    return MobileNetV3Space(**settings)


register_space("ofa-mbv3-w1.0", _ofa_mbv3(1.0))
register_space("ofa-mbv3-w1.2", _ofa_mbv3(1.2))
register_space("tiny-mbv3", _tiny_mbv3)
