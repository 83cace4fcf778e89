"""The OFA MobileNetV3 family: a stem, a fixed first block, elastic stages and the MBv3 head.

``ofa-mbv3-w1.0``/``-w1.2`` replicate OFA's ``OFAMobileNetV3`` channel for channel so that OFA's
latency-table keys and MAC counts come out identical; ``tiny-mbv3`` is the same block family scaled
down for CIFAR-sized images (stride-1 stem, three downsamplings, 24–40 px).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .arch import Arch
from .base import SearchSpace
from .signature import OpSignature
from .utils import ceil_div, make_divisible


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage: output width, stride of its first block, activation and squeeze-excite."""

    width: int
    stride: int
    act: str
    se: bool


class MobileNetV3Space(SearchSpace):
    """Elastic kernel (per block), expand ratio (per block), depth (per stage) and resolution.

    ``base_widths`` are OFA's nine widths (stem, first block, five stages, final expand, feature mix),
    each scaled by ``make_divisible(w · width_mult, 8)``.
    """

    def __init__(
        self,
        name: str,
        width_mult: float = 1.0,
        base_widths: Sequence[int] = (16, 16, 24, 40, 80, 112, 160, 960, 1280),
        stem_stride: int = 2,
        stage_strides: Sequence[int] = (2, 2, 2, 1, 2),
        stage_acts: Sequence[str] = ("relu", "relu", "h_swish", "h_swish", "h_swish"),
        stage_se: Sequence[bool] = (False, True, False, True, True),
        ks: Sequence[int] = (3, 5, 7),
        expand: Sequence[int | float] = (3, 4, 6),
        depth: Sequence[int] = (2, 3, 4),
        resolutions: Sequence[int] = tuple(range(128, 225, 4)),
        num_classes: int = 1000,
    ) -> None:
        if len(base_widths) != 9:
            raise ValueError(f"base_widths needs 9 values (stem, first block, 5 stages, head x2), got {len(base_widths)}")
        stage_lists = (stage_strides, stage_acts, stage_se)
        if len({len(values) for values in stage_lists}) != 1 or len(stage_strides) != len(base_widths) - 4:
            raise ValueError("stage_strides, stage_acts and stage_se need one value per stage (5)")
        for label, values in (("ks", ks), ("expand", expand), ("depth", depth), ("resolutions", resolutions)):
            if not values or len(set(values)) != len(values) or list(values) != sorted(values):
                raise ValueError(f"{label}={list(values)} must be distinct and ascending")
        if any(k % 2 == 0 for k in ks):
            raise ValueError(f"ks={list(ks)}: kernel sizes must be odd")
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1")
        self.name = name
        self.width_mult = float(width_mult)
        self.base_widths = tuple(int(w) for w in base_widths)
        self.stem_stride = int(stem_stride)
        self.ks = tuple(int(k) for k in ks)
        self.expand = tuple(expand)
        self.depth = tuple(int(d) for d in depth)
        self.resolutions = tuple(int(r) for r in resolutions)
        self.num_classes = int(num_classes)
        widths = [make_divisible(w * self.width_mult, 8) for w in self.base_widths]
        self.stem_width, self.first_block_width = widths[0], widths[1]
        self.final_expand_width, self.feature_mix_width = widths[7], widths[8]
        self.stages = tuple(
            StageSpec(width=w, stride=int(s), act=a, se=bool(e))
            for w, s, a, e in zip(widths[2:7], stage_strides, stage_acts, stage_se)
        )
        self.num_stages = len(self.stages)
        self.max_depth = max(self.depth)
        self.num_blocks = self.num_stages * self.max_depth

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> MobileNetV3Space:
        """Rebuild a space from ``config()`` (e.g. the one stored with a supernet checkpoint)."""
        if config.get("family") != "mbv3":
            raise ValueError(f"space family {config.get('family')!r} is not supported (only 'mbv3')")
        stages = config["stages"]
        return cls(
            name=name, width_mult=config["width_mult"], base_widths=config["base_widths"],
            stem_stride=config["stem_stride"], stage_strides=[s[1] for s in stages],
            stage_acts=[s[2] for s in stages], stage_se=[s[3] for s in stages], ks=config["ks"],
            expand=config["expand"], depth=config["depth"], resolutions=config["resolutions"],
            num_classes=config["num_classes"],
        )

    def config(self) -> dict[str, Any]:
        return {
            "family": "mbv3",
            "width_mult": self.width_mult,
            "base_widths": list(self.base_widths),
            "stem_stride": self.stem_stride,
            "stages": [[s.width, s.stride, s.act, s.se] for s in self.stages],
            "ks": list(self.ks),
            "expand": list(self.expand),
            "depth": list(self.depth),
            "resolutions": list(self.resolutions),
            "num_classes": self.num_classes,
        }

    # --- topology -------------------------------------------------------------------------------
    def mid_channels(self, in_c: int, expand: int | float) -> int:
        """Expanded width of a block: make_divisible(round(in · e), 8), as OFA's DynamicMBConvLayer."""
        return make_divisible(round(in_c * expand), 8)

    def slot_io(self, slot: int) -> tuple[int, int, int, StageSpec]:
        """(input channels, output channels, stride, stage) of block slot ``slot``."""
        stage_index, position = divmod(slot, self.max_depth)
        stage = self.stages[stage_index]
        if position:
            return stage.width, stage.width, 1, stage
        in_c = self.first_block_width if stage_index == 0 else self.stages[stage_index - 1].width
        return in_c, stage.width, stage.stride, stage

    def stage_input_sizes(self, r: int) -> list[int]:
        """Spatial size entering each stage at resolution ``r``."""
        size = ceil_div(r, self.stem_stride)
        sizes = []
        for stage in self.stages:
            sizes.append(size)
            size = ceil_div(size, stage.stride)
        return sizes

    def block_signature(self, slot: int, r: int, kernel: int, expand: int | float) -> OpSignature:
        """The operator block slot ``slot`` runs at resolution ``r`` with the given choices."""
        in_c, out_c, stride, stage = self.slot_io(slot)
        stage_index, position = divmod(slot, self.max_depth)
        in_hw = self.stage_input_sizes(r)[stage_index]
        if position:
            in_hw = ceil_div(in_hw, stage.stride)
        return OpSignature(
            kind="expanded_conv", in_hw=in_hw, in_c=in_c, out_hw=ceil_div(in_hw, stride), out_c=out_c,
            mid_c=self.mid_channels(in_c, expand), kernel=kernel, stride=stride, se=stage.se, act=stage.act,
            residual=stride == 1 and in_c == out_c,
        )

    def fixed_signatures(self, r: int) -> tuple[list[OpSignature], list[OpSignature]]:
        """Operators every arch at resolution ``r`` runs: (stem + first block, head)."""
        hw = ceil_div(r, self.stem_stride)
        first = self.first_block_width
        front = [
            OpSignature("Conv", in_hw=r, in_c=3, out_hw=hw, out_c=self.stem_width, kernel=3,
                        stride=self.stem_stride, act="h_swish"),
            OpSignature("expanded_conv", in_hw=hw, in_c=self.stem_width, out_hw=hw, out_c=first,
                        mid_c=self.stem_width, kernel=3, stride=1, se=False, act="relu",
                        residual=self.stem_width == first),
        ]
        last_hw = self.stage_input_sizes(r)[-1]
        last_hw = ceil_div(last_hw, self.stages[-1].stride)
        last_c, expand_c, mix_c = self.stages[-1].width, self.final_expand_width, self.feature_mix_width
        head = [
            OpSignature("Conv_1", in_hw=last_hw, in_c=last_c, out_hw=last_hw, out_c=expand_c, act="h_swish"),
            OpSignature("AvgPool2D", in_hw=last_hw, in_c=expand_c, out_hw=1, out_c=expand_c),
            OpSignature("Conv_2", in_hw=1, in_c=expand_c, out_hw=1, out_c=mix_c, act="h_swish"),
            OpSignature("Logits", in_hw=1, in_c=mix_c, out_hw=0, out_c=self.num_classes),
        ]
        return front, head

    def active_slots(self, arch: Arch) -> list[int]:
        """Block slots that run, in execution order: the first ``d[g]`` slots of every stage."""
        return [g * self.max_depth + j for g, depth in enumerate(arch.d) for j in range(depth)]

    def signatures(self, arch: Arch) -> list[OpSignature]:
        arch = self.validate(arch)
        front, head = self.fixed_signatures(arch.r)
        blocks = [self.block_signature(b, arch.r, arch.ks[b], arch.e[b]) for b in self.active_slots(arch)]
        return front + blocks + head

    def lut_layout(self, resolutions: Sequence[int] | None = None) -> dict[str, Any]:
        resolutions = list(self.resolutions if resolutions is None else resolutions)
        for r in resolutions:
            if r not in self.resolutions:
                raise ValueError(f"{self.name}: r={r} is not an allowed resolution; allowed: {list(self.resolutions)}")
        fixed_keys, fixed_io, fixed_params, block_keys, block_io, block_params, signatures = [], [], [], [], [], [], []
        for r in resolutions:
            front, head = self.fixed_signatures(r)
            fixed_keys.append([sig.key for sig in front + head])
            fixed_io.append([float(sig.io_elements) for sig in front + head])
            fixed_params.append([float(sig.params) for sig in front + head])
            signatures += front + head
            for b in range(self.num_blocks):
                for k in self.ks:
                    for e in self.expand:
                        sig = self.block_signature(b, r, k, e)
                        block_keys.append(sig.key)
                        block_io.append(float(sig.io_elements))
                        block_params.append(float(sig.params))
                        signatures.append(sig)
        return {
            "resolutions": resolutions,
            "fixed_keys": fixed_keys,
            "block_keys": block_keys,
            "fixed_io": fixed_io,
            "block_io": block_io,
            "fixed_params": fixed_params,
            "block_params": block_params,
            "B": self.num_blocks, "K": len(self.ks), "E": len(self.expand),
            "G": self.num_stages, "D": len(self.depth),
            "block_stage": [b // self.max_depth for b in range(self.num_blocks)],
            "block_position": [b % self.max_depth for b in range(self.num_blocks)],
            "depth_values": list(self.depth),
            "signatures": signatures,
        }
