"""What every search space offers: choices, sampling, variation, encoding and per-arch accounting."""
from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .arch import Arch
from .signature import OpSignature

RngLike = np.random.Generator | int | None


def as_rng(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class SearchSpace(abc.ABC):
    """A family of subnets. Subclasses describe the topology; this base class handles codes and RNG.

    Codes are int32 rows ``[ks index × B, e index × B, d index × G, r index]`` — the compact form the
    native latency predictor and the vectorised search work on.
    """

    name: str
    ks: tuple[int, ...]
    expand: tuple[int | float, ...]
    depth: tuple[int, ...]
    resolutions: tuple[int, ...]
    num_blocks: int  # B: block slots
    num_stages: int  # G: stages with elastic depth

    # --- topology, supplied by subclasses -------------------------------------------------------
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that defines the space, as plain JSON values (hashed for LUT compatibility)."""

    @abc.abstractmethod
    def signatures(self, arch: Arch) -> list[OpSignature]:
        """Active operators of ``arch`` in execution order."""

    @abc.abstractmethod
    def lut_layout(self, resolutions: Sequence[int] | None = None) -> dict[str, Any]:
        """Keys a latency predictor needs, laid out as fixed terms and per-slot choice grids.

        Returns resolutions, fixed_keys/fixed_io per resolution, block_keys/block_io flat over
        ``[R, B, K, E]`` (io: tensor elements at each op's borders) with fixed_params/block_params
        (each op's trainable parameters), dims B, K, E, G, D, block_stage,
        block_position, depth_values and every signature involved.
        """

    # --- identity -------------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """Stable hash of the space's definition: equal hashes mean identical op signatures."""
        blob = json.dumps(self.config(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def num_codes(self) -> int:
        return 2 * self.num_blocks + self.num_stages + 1

    def code_fields(self) -> list[str]:
        """Human names of the code columns, e.g. ``ks[3]`` or ``r``."""
        return (
            [f"ks[{b}]" for b in range(self.num_blocks)]
            + [f"e[{b}]" for b in range(self.num_blocks)]
            + [f"d[{g}]" for g in range(self.num_stages)]
            + ["r"]
        )

    def code_cardinalities(self) -> np.ndarray:
        """Number of choices per code column."""
        return np.array(
            [len(self.ks)] * self.num_blocks
            + [len(self.expand)] * self.num_blocks
            + [len(self.depth)] * self.num_stages
            + [len(self.resolutions)],
            dtype=np.int32,
        )

    # --- validation -----------------------------------------------------------------------------
    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if every value is a choice of this space, else ValueError naming it."""
        if not isinstance(arch, Arch):
            raise ValueError(f"expected an Arch, got {type(arch).__name__}")
        for field, values, count in (("ks", arch.ks, self.num_blocks), ("e", arch.e, self.num_blocks),
                                     ("d", arch.d, self.num_stages)):
            if len(values) != count:
                raise ValueError(f"{self.name}: len({field})={len(values)}, expected {count}")
        for field, values, allowed in (("ks", arch.ks, self.ks), ("e", arch.e, self.expand), ("d", arch.d, self.depth)):
            for i, value in enumerate(values):
                if value not in allowed:
                    raise ValueError(f"{self.name}: {field}[{i}]={value} is not allowed; allowed: {list(allowed)}")
        if arch.r not in self.resolutions:
            raise ValueError(f"{self.name}: r={arch.r} is not an allowed resolution; allowed: {list(self.resolutions)}")
        return arch

    def arch(self, value: Arch | dict[str, Any]) -> Arch:
        """An Arch of this space from an Arch or an OFA dict, validated."""
        return self.validate(value if isinstance(value, Arch) else Arch.from_dict(value))

    # --- codes ----------------------------------------------------------------------------------
    def encode(self, archs: Iterable[Arch | Mapping[str, Any]] | Arch | Mapping[str, Any]) -> np.ndarray:
        """int32 codes ``[N, S]`` for archs (or OFA dicts), validating each.

        Vectorised: values are gathered once and mapped to choice indices with ``searchsorted``; if
        anything is off, the per-arch path runs to raise the precise error.
        """
        if isinstance(archs, (Arch, Mapping)):
            archs = [archs]
        archs = list(archs)
        try:
            return self._encode_fast(archs)
        except (ValueError, TypeError, KeyError):
            pass
        rows = [self.arch(item) for item in archs]  # raises the precise error
        return self._encode_fast(rows)

    def _encode_fast(self, archs: list[Arch | Mapping[str, Any]]) -> np.ndarray:
        def genes(item: Arch | Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
            if isinstance(item, Arch):
                return item.ks, item.e, item.d, item.r
            r = item["r"] if "r" in item else item["image_size"]
            return item["ks"], item["e"], item["d"], r

        columns = list(zip(*map(genes, archs))) if archs else [(), (), (), ()]
        parts = []
        for values, choices, width in ((columns[0], self.ks, self.num_blocks), (columns[1], self.expand, self.num_blocks),
                                       (columns[2], self.depth, self.num_stages), (columns[3], self.resolutions, 1)):
            array = np.asarray(values, dtype=np.float64).reshape(len(archs), -1)
            if array.shape[1] != width:
                raise ValueError("wrong length")
            allowed = np.asarray(choices, dtype=np.float64)
            index = np.searchsorted(allowed, array).clip(0, len(allowed) - 1)
            if not np.array_equal(allowed[index], array):
                raise ValueError("value not allowed")
            parts.append(index)
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.int32).reshape(len(archs), self.num_codes)

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """Return codes as a C-contiguous int32 ``[N, S]`` array, or ValueError naming the bad dtype or cell.

        Only integer arrays are codes: a float, NaN, bool or object array is refused, not truncated.
        """
        codes = self._integer_array(codes)
        if codes.ndim != 2 or codes.shape[1] != self.num_codes:
            raise ValueError(f"{self.name}: codes must have shape [N, {self.num_codes}], got {list(codes.shape)}")
        bad = (codes < 0) | (codes >= self.code_cardinalities())
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise ValueError(
                f"{self.name}: codes row {row}: {self.code_fields()[col]} code {codes[row, col]} "
                f"out of range [0, {self.code_cardinalities()[col]})"
            )
        return np.ascontiguousarray(codes, dtype=np.int32)

    def as_codes(self, archs: np.ndarray | Iterable[Arch | Mapping[str, Any]] | Arch | Mapping[str, Any],
                 check_values: bool = True) -> np.ndarray:
        """int32 codes ``[N, S]`` from codes (an integer array) or from archs / OFA dicts (encoded).

        What every predictor takes, so that each accepts the same inputs and refuses the same ones. A
        non-integer array is always refused; ``check_values=False`` leaves shape and range to a caller
        that checks them itself (the native latency core, on its hot path) and passes the array as given.
        """
        if isinstance(archs, np.ndarray):
            return self.check_codes(archs) if check_values else self._integer_array(archs)
        return self.encode(archs)

    def _integer_array(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iu":
            raise ValueError(f"{self.name}: codes must be an integer array, got dtype {codes.dtype}")
        return codes

    def decode(self, codes: np.ndarray) -> list[Arch]:
        """Archs from int32 codes (inverse of ``encode``)."""
        codes = self.check_codes(np.atleast_2d(codes))
        B, G = self.num_blocks, self.num_stages
        return [
            Arch(ks=[self.ks[i] for i in row[:B]], e=[self.expand[i] for i in row[B:2 * B]],
                 d=[self.depth[i] for i in row[2 * B:2 * B + G]], r=self.resolutions[row[-1]])
            for row in codes.tolist()
        ]

    # --- sampling and variation -----------------------------------------------------------------
    def sample_codes(self, n: int, rng: RngLike = None) -> np.ndarray:
        """``n`` uniformly random archs as codes (vectorised)."""
        generator = as_rng(rng)
        return (generator.random((n, self.num_codes)) * self.code_cardinalities()).astype(np.int32)

    def sample(self, rng: RngLike = None) -> Arch:
        """One uniformly random arch."""
        return self.decode(self.sample_codes(1, rng))[0]

    def mutate(self, arch: Arch, rng: RngLike = None, prob: float = 0.1) -> Arch:
        """Resample each gene of ``arch`` independently with probability ``prob``."""
        generator = as_rng(rng)
        codes = self.encode(arch)
        fresh = self.sample_codes(1, generator)
        mask = generator.random(codes.shape) < prob
        return self.decode(np.where(mask, fresh, codes))[0]

    def crossover(self, first: Arch, second: Arch, rng: RngLike = None) -> Arch:
        """Take each gene from one parent or the other with equal probability."""
        generator = as_rng(rng)
        a, b = self.encode(first), self.encode(second)
        return self.decode(np.where(generator.random(a.shape) < 0.5, a, b))[0]

    def min_arch(self, r: int | None = None) -> Arch:
        """Smallest choice everywhere (the cheapest subnet at resolution ``r``, default the smallest)."""
        return self.validate(Arch(ks=[min(self.ks)] * self.num_blocks, e=[min(self.expand)] * self.num_blocks,
                                  d=[min(self.depth)] * self.num_stages, r=min(self.resolutions) if r is None else r))

    def max_arch(self, r: int | None = None) -> Arch:
        """Largest choice everywhere (the full network at resolution ``r``, default the largest)."""
        return self.validate(Arch(ks=[max(self.ks)] * self.num_blocks, e=[max(self.expand)] * self.num_blocks,
                                  d=[max(self.depth)] * self.num_stages, r=max(self.resolutions) if r is None else r))

    # --- accounting -----------------------------------------------------------------------------
    def macs(self, arch: Arch | dict[str, Any]) -> int:
        """Multiply-accumulates of the subnet, counted as OFA counts them."""
        return sum(sig.macs for sig in self.signatures(self.arch(arch)))

    def params(self, arch: Arch | dict[str, Any]) -> int:
        """Trainable parameters of the extracted subnet (BatchNorm affine included)."""
        return sum(sig.params for sig in self.signatures(self.arch(arch)))

    def all_signatures(self, resolutions: Sequence[int] | None = None) -> list[OpSignature]:
        """Every distinct operator any arch at these resolutions can use: what a full LUT must hold."""
        layout = self.lut_layout(resolutions)
        unique = {sig.key: sig for sig in layout["signatures"]}
        return [unique[key] for key in sorted(unique)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, hash={self.content_hash})"
