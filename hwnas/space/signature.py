"""What one operator of a subnet is, independent of weights: the unit a latency table is keyed by.

The key strings are OFA's (``ofa/nas/efficiency_predictor/latency_lookup_table.py``) so that OFA and
ProxylessNAS tables import unchanged. MAC and parameter counts follow OFA's counter: convolutions and
linear layers only, bias and BatchNorm affine parameters included in ``params``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .utils import make_divisible

KINDS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")
ACTIVATIONS = ("relu", "h_swish")
SE_REDUCTION = 4


def se_channels(mid_c: int) -> int:
    """Hidden width of a squeeze-excite module, as OFA's SEModule/DynamicSE compute it."""
    return make_divisible(mid_c // SE_REDUCTION, 8)


@dataclass(frozen=True)
class OpSignature:
    """One active operator: kind, input H×W×C, output H×W×C and, for blocks, their hyper-parameters.

    ``expanded_conv`` is an inverted-residual block; it has a 1×1 expansion conv unless
    ``mid_c == in_c`` (OFA's first block, expand ratio 1). ``out_hw`` is 0 for ``Logits`` (a vector).
    """

    kind: str
    in_hw: int
    in_c: int
    out_hw: int
    out_c: int
    mid_c: int = 0
    kernel: int = 1
    stride: int = 1
    se: bool = False
    act: str | None = None
    residual: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not an operator kind; allowed: {KINDS}")
        if self.act is not None and self.act not in ACTIVATIONS:
            raise ValueError(f"act={self.act!r} is not supported; allowed: {ACTIVATIONS} or None")

    @property
    def expands(self) -> bool:
        return self.kind == "expanded_conv" and self.mid_c != self.in_c

    @property
    def key(self) -> str:
        """OFA's lookup key, e.g. ``expanded_conv-input:14x14x80-output:14x14x80-expand:480-...``."""
        head = f"{self.kind}-input:{self.in_hw}x{self.in_hw}x{self.in_c}-"
        if self.kind == "Logits":
            return head + f"output:{self.out_c}"
        head += f"output:{self.out_hw}x{self.out_hw}x{self.out_c}"
        if self.kind != "expanded_conv":
            return head
        return head + (
            f"-expand:{self.mid_c}-kernel:{self.kernel}-stride:{self.stride}-idskip:{int(self.residual)}"
            f"-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
        )

    @property
    def io_elements(self) -> int:
        """Elements of the op's input plus output tensors (batch 1): what layout changes at its borders touch."""
        out_elements = self.out_c if self.kind == "Logits" else self.out_hw * self.out_hw * self.out_c
        return self.in_hw * self.in_hw * self.in_c + out_elements

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and linear layers, counted as OFA counts them."""
        if self.kind in ("Conv", "Conv_1"):
            return self.out_hw * self.out_hw * self.kernel * self.kernel * self.in_c * self.out_c
        if self.kind in ("Conv_2", "Logits"):
            return self.in_c * self.out_c
        if self.kind == "AvgPool2D":
            return 0
        total = self.in_hw * self.in_hw * self.in_c * self.mid_c if self.expands else 0
        total += self.out_hw * self.out_hw * self.kernel * self.kernel * self.mid_c
        if self.se:
            total += 2 * self.mid_c * se_channels(self.mid_c)
        return total + self.out_hw * self.out_hw * self.mid_c * self.out_c

    @property
    def params(self) -> int:
        """Trainable parameters: weights, biases and BatchNorm scale/shift (running stats excluded)."""
        if self.kind in ("Conv", "Conv_1"):
            return self.kernel * self.kernel * self.in_c * self.out_c + 2 * self.out_c
        if self.kind == "Conv_2":
            return self.in_c * self.out_c
        if self.kind == "Logits":
            return self.in_c * self.out_c + self.out_c
        if self.kind == "AvgPool2D":
            return 0
        total = self.in_c * self.mid_c + 2 * self.mid_c if self.expands else 0
        total += self.kernel * self.kernel * self.mid_c + 2 * self.mid_c
        if self.se:
            hidden = se_channels(self.mid_c)
            total += self.mid_c * hidden + hidden + hidden * self.mid_c + self.mid_c
        return total + self.mid_c * self.out_c + 2 * self.out_c
