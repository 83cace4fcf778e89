"""Search spaces: architectures, their choices and the operators they run (pure Python, no torch)."""
from .arch import Arch
from .base import SearchSpace
from .mbv3 import MobileNetV3Space, StageSpec
from .registry import get_space, list_spaces, register_space
from .signature import OpSignature, se_channels
from .utils import ceil_div, make_divisible

__all__ = [
    "Arch", "SearchSpace", "MobileNetV3Space", "StageSpec", "OpSignature", "get_space", "list_spaces",
    "register_space", "se_channels", "make_divisible", "ceil_div",
]
