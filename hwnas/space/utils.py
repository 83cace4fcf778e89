"""Small arithmetic shared by the spaces."""
from __future__ import annotations


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def ceil_div(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded stride: ceil(size / stride), as OFA's LUT keys assume."""
    return (size + stride - 1) // stride
