"""Ordinary modules built around copied tensors, without running any initialiser.

Subnet extraction creates a few hundred small modules; ``nn.Conv2d(...)`` spends ~70 µs in its
constructor (mostly ``Module.__setattr__`` and weight init), which alone would exceed the 3 ms budget.
Instead each module is stamped from a cached meta-device prototype built by the real constructor —
so every attribute is exactly what that constructor sets — and receives copies of the given tensors.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


# What ``nn.Module.__init__`` creates: flags, and dicts/sets for tensors, children and hooks.
_MODULE_STATE = nn.Module().__dict__
_MODULE_FLAGS = {key: value for key, value in _MODULE_STATE.items() if not isinstance(value, (dict, set))}
_MODULE_CONTAINERS = [(key, type(value)) for key, value in _MODULE_STATE.items() if isinstance(value, (dict, set))]


def _blank_like(module: M, training: bool) -> M:
    """A new instance of ``module``'s class sharing its plain attributes; no tensors, children or hooks.

    Plain attributes (channel counts, kernel tuples, activation names) are immutable values, so
    sharing them is safe; this skips ``nn.Module.__init__``'s slow attribute protocol.
    """
    new = module.__class__.__new__(module.__class__)
    state = new.__dict__
    state.update(module.__dict__)
    state.pop("_compiled_call_impl", None)  # set by Module.compile(): bound to ``module`` itself
    state.update(_MODULE_FLAGS)
    for key, factory in _MODULE_CONTAINERS:
        state[key] = factory()
    state["training"] = training
    state["_non_persistent_buffers_set"] = set(module._non_persistent_buffers_set)
    return new


def copy_prefix(tensor: torch.Tensor, *sizes: int) -> torch.Tensor:
    """A contiguous copy of ``tensor[:sizes[0], :sizes[1], ...]``."""
    for dim in range(1, len(sizes)):
        if sizes[dim] != tensor.size(dim):
            tensor = tensor.narrow(dim, 0, sizes[dim])
    return tensor.narrow_copy(0, 0, sizes[0])


def stamp(prototype: M, tensors: Mapping[str, torch.Tensor | None], training: bool) -> M:
    """A leaf module like ``prototype`` that takes ownership of ``tensors`` as its parameters and buffers.

    ``tensors`` must be fresh copies (see :func:`copy_prefix`): the new module keeps them as they are
    (parameters are detached leaves by construction; buffers never carry gradients).
    """
    new = _blank_like(prototype, training)
    for name, param in prototype._parameters.items():
        value = tensors[name] if param is not None else None
        new._parameters[name] = None if value is None else nn.Parameter(value, param.requires_grad)
    for name, buffer in prototype._buffers.items():
        new._buffers[name] = tensors[name] if buffer is not None else None
    return new


def copy_module(module: M) -> M:
    """A deep copy of a module made of tensors and immutable plain attributes (hooks are not copied)."""
    tensors = {name: None if t is None else t.clone()
               for name, t in (*module._parameters.items(), *module._buffers.items())}
    new = stamp(module, tensors, module.training)
    for name, child in module._modules.items():
        new._modules[name] = None if child is None else copy_module(child)
    return new


@functools.cache
def conv_prototype(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int,
                   bias: bool) -> nn.Conv2d:
    """A meta-device ``nn.Conv2d`` with 'same' padding ``kernel // 2``: a template for :func:`stamp`."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=bias,
                     device="meta")


@functools.cache
def bn_prototype(num_features: int, eps: float, momentum: float | None) -> nn.BatchNorm2d:
    """A meta-device ``nn.BatchNorm2d``: a template for :func:`stamp`."""
    return nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, device="meta")
