"""Write a lowered graph (``hwnas.formats.ir``) as a TFLite flatbuffer: fp32, NHWC, no converter needed.

The same writer builds the single-op models the profiler times and the whole subnets that are deployed,
so profiled ops and deployed ops are the same TFLite operators. Layout and numerics:

- one input ``"input"`` [N, H, W, C] (N from the graph, 1 for profiling and export), one output
  ``"output"`` ([N, H, W, C] for a feature map, [N, classes] after ``Logits``), and a
  ``serving_default`` signature naming both;
- ``Conv`` → ``CONV_2D`` (weights OHWI) or ``DEPTHWISE_CONV_2D`` (weights [1, k, k, C], multiplier 1)
  with ReLU fused; h-swish → ``HARD_SWISH``; h-sigmoid → the conv's bias +3 with RELU6 fused, then
  ``MUL`` by 1/6 (relu6(x + 3) / 6, exactly PyTorch's formula with the +3 folded into the bias);
- padding: PyTorch pads k//2 on every side, TFLite ``SAME`` puts the odd pixel at the end. ``SAME`` is
  used only where it reads exactly the same window as PyTorch (stride 1, and stride 2 on odd
  inputs); elsewhere (stride 2 on even inputs) an explicit ``PAD`` then ``VALID``. Under XNNPACK the
  PAD costs no measurable time (PAD+VALID vs SAME on the same shapes: within ±2%, the noise level);
- a depthwise kernel of more than 25 taps (k7) → bands of kernel rows, each a ``SLICE`` of one padded input
  and a ``DEPTHWISE_CONV_2D`` of ≤ 25 taps, summed by ``ADD`` (``_Writer.split_depthwise``): XNNPACK runs
  one 49-tap depthwise conv ~7× slower than three bands, and the largest tiny-mbv3 subnet 4.9× slower;
- ``GlobalAvgPool`` → ``MEAN`` over axes [1, 2] keeping dims; squeeze-excite scaling → broadcast
  ``MUL``; residual → ``ADD``; ``Linear`` → ``FULLY_CONNECTED`` (weights [out, in]), which flattens
  its [N, 1, 1, C] input itself (no ``RESHAPE``);
- buffer 0 is the schema's empty sentinel; every constant has its own 16-byte aligned buffer;
  ``metadata`` entries become named model metadata (UTF-8 buffers) read back by
  :func:`read_tflite_metadata`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from torch import nn

from .ir import Add, Conv, GlobalAvgPool, Graph, Linear, Mul, lower

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
SIGNATURE_KEY = "serving_default"
_ALIGNMENT = 16  # as TensorFlow's converter aligns constant buffers
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
MAX_DEPTHWISE_TAPS = 25  # XNNPACK's largest one-pass depthwise kernel; larger kernels are split (split_depthwise)


class _AlignedBuffer(tfl.BufferT):
    """A constant buffer whose bytes start on a 16-byte boundary (fp32 weights read in place)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.raw = data

    def Pack(self, builder: flatbuffers.Builder) -> int:
        builder.StartVector(1, len(self.raw), _ALIGNMENT)
        builder.head -= len(self.raw)
        builder.Bytes[builder.head:builder.head + len(self.raw)] = self.raw
        data = builder.EndVector()
        tfl.BufferStart(builder)
        tfl.BufferAddData(builder, data)
        return tfl.BufferEnd(builder)


def _reached(size: int, out: int, kernel: int, stride: int, pad: int) -> tuple[int, int]:
    """(first, last) kernel index along one axis that reads a real pixel for at least one output position:
    output ``i`` reads input ``i·stride − pad + a`` for kernel index ``a``."""
    return max(0, pad - (out - 1) * stride), min(kernel - 1, size - 1 + pad)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, padding before) of TFLite's SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


class _Writer:
    """Accumulates tensors, buffers, operator codes and operators of one subgraph."""

    def __init__(self, decompose_hard_swish: bool = False) -> None:
        self.decompose_hard_swish = decompose_hard_swish
        self.tensors: list[tfl.TensorT] = []
        self.buffers: list[tfl.BufferT] = [tfl.BufferT()]  # buffer 0: the empty sentinel
        self.opcodes: list[tfl.OperatorCodeT] = []
        self.opcode_index: dict[int, int] = {}
        self.operators: list[tfl.OperatorT] = []
        self.index: dict[str, int] = {}  # graph tensor name -> tensor index
        self.shapes: dict[str, tuple[int, ...]] = {}

    def tensor(self, name: str, shape: Sequence[int], dtype: int = tfl.TensorType.FLOAT32,
               data: np.ndarray | None = None) -> int:
        if name in self.index:
            raise ValueError(f"tensor {name!r} is defined twice")
        tensor = tfl.TensorT()
        tensor.name = name
        tensor.shape = [int(v) for v in shape]
        tensor.type = dtype
        tensor.buffer = 0
        if data is not None:
            if tuple(data.shape) != tuple(tensor.shape):
                raise ValueError(f"constant {name!r}: data shape {data.shape} != tensor shape {tensor.shape}")
            self.buffers.append(_AlignedBuffer(np.ascontiguousarray(data).astype("<" + data.dtype.str[1:]).tobytes()))
            tensor.buffer = len(self.buffers) - 1
        self.tensors.append(tensor)
        self.index[name] = len(self.tensors) - 1
        self.shapes[name] = tuple(tensor.shape)
        return self.index[name]

    def const(self, name: str, data: np.ndarray) -> int:
        dtype = {np.dtype(np.float32): tfl.TensorType.FLOAT32, np.dtype(np.int32): tfl.TensorType.INT32}[data.dtype]
        return self.tensor(name, data.shape, dtype, data)

    def op(self, code: int, inputs: Sequence[int], outputs: Sequence[int], options_type: int = 0,
           options: Any = None) -> None:
        if code not in self.opcode_index:
            opcode = tfl.OperatorCodeT()
            opcode.builtinCode = code
            opcode.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
            opcode.version = 1
            self.opcodes.append(opcode)
            self.opcode_index[code] = len(self.opcodes) - 1
        operator = tfl.OperatorT()
        operator.opcodeIndex = self.opcode_index[code]
        operator.inputs = [int(i) for i in inputs]
        operator.outputs = [int(i) for i in outputs]
        operator.builtinOptionsType = options_type
        operator.builtinOptions = options
        self.operators.append(operator)

    # --- graph nodes -------------------------------------------------------------------------------

    def conv(self, node: Conv, out_name: str) -> None:
        n, h, w, c = self.shapes[node.input]
        o, i_per_group, kh, kw = node.weight.shape
        if kh != kw:
            raise ValueError(f"{node.output}: only square kernels are supported, got {kh}x{kw}")
        if node.groups != 1 and not node.depthwise:
            raise ValueError(f"{node.output}: grouped conv (groups={node.groups}) is neither dense nor depthwise")
        if i_per_group * node.groups != c:
            raise ValueError(f"{node.output}: weight expects {i_per_group * node.groups} input channels, tensor has {c}")
        k, s, p = kh, node.stride, node.pad
        out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if node.depthwise and k * k > MAX_DEPTHWISE_TAPS:
            self.split_depthwise(node, out_name)
            return
        source = self.index[node.input]
        if p == 0:
            padding = tfl.Padding.VALID
        elif all(_same_padding(size, k, s) == (out, p) for size, out in ((h, out_h), (w, out_w))):
            padding = tfl.Padding.SAME
        else:  # SAME would shift the window: pad explicitly, exactly as PyTorch reads the input
            after_h = max((out_h - 1) * s + k - h - p, 0)
            after_w = max((out_w - 1) * s + k - w - p, 0)
            pads = self.const(f"{node.output}/paddings",
                              np.array([[0, 0], [p, after_h], [p, after_w], [0, 0]], np.int32))
            padded = self.tensor(f"{node.output}/padded", (n, h + p + after_h, w + p + after_w, c))
            self.op(tfl.BuiltinOperator.PAD, [source, pads], [padded], tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT())
            source, padding = padded, tfl.Padding.VALID

        bias = node.bias.astype(np.float32)
        fused = tfl.ActivationFunctionType.NONE
        if node.act == "relu":
            fused = tfl.ActivationFunctionType.RELU
        elif node.act == "h_sigmoid":  # relu6(x + 3) / 6 with the +3 folded into the bias
            bias = (node.bias.astype(np.float64) + 3.0).astype(np.float32)
            fused = tfl.ActivationFunctionType.RELU6
        elif node.act not in (None, "h_swish"):
            raise ValueError(f"{node.output}: activation {node.act!r} has no TFLite lowering")

        if node.depthwise:
            weight = np.ascontiguousarray(node.weight[:, 0].transpose(1, 2, 0)[None], dtype=np.float32)
            code, options_type = tfl.BuiltinOperator.DEPTHWISE_CONV_2D, tfl.BuiltinOptions.DepthwiseConv2DOptions
            options = tfl.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
        else:
            weight = np.ascontiguousarray(node.weight.transpose(0, 2, 3, 1), dtype=np.float32)
            code, options_type = tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
            options = tfl.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = padding, s, s
        options.dilationHFactor = options.dilationWFactor = 1
        options.fusedActivationFunction = fused
        weights = self.const(f"{node.output}/weights", weight)
        biases = self.const(f"{node.output}/bias", bias)

        shape = (n, out_h, out_w, o)
        if node.act in ("h_swish", "h_sigmoid"):
            pre = self.tensor(f"{node.output}/conv", shape)
            self.op(code, [source, weights, biases], [pre], options_type, options)
            out = self.tensor(out_name, shape)
            if node.act == "h_swish":
                self.hard_swish(pre, out, f"{node.output}/h_swish", shape)
            else:
                sixth = self.const(f"{node.output}/one_sixth", np.array([1.0 / 6.0], np.float32))
                self.op(tfl.BuiltinOperator.MUL, [pre, sixth], [out], tfl.BuiltinOptions.MulOptions, tfl.MulOptionsT())
        else:
            out = self.tensor(out_name, shape)
            self.op(code, [source, weights, biases], [out], options_type, options)

    def hard_swish(self, source: int, out: int, name: str, shape: tuple[int, ...]) -> None:
        """x · relu6(x + 3) / 6: one ``HARD_SWISH``, or (``decompose_hard_swish``) ``ADD`` +3 with RELU6 fused,
        ``MUL`` by x, ``MUL`` by 1/6. LiteRT 2.3's XNNPACK declines int8 ``HARD_SWISH``, so a full-integer
        file cut its graph into a partition per activation (every h-swish block of tiny-mbv3: 3 partitions,
        every ReLU block: 1); the three ops it takes in int8."""
        if not self.decompose_hard_swish:
            self.op(tfl.BuiltinOperator.HARD_SWISH, [source], [out], tfl.BuiltinOptions.HardSwishOptions,
                    tfl.HardSwishOptionsT())
            return
        shifted = self.tensor(f"{name}/plus3_relu6", shape)
        add = tfl.AddOptionsT()
        add.fusedActivationFunction = tfl.ActivationFunctionType.RELU6
        self.op(tfl.BuiltinOperator.ADD, [source, self.const(f"{name}/three", np.array([3.0], np.float32))],
                [shifted], tfl.BuiltinOptions.AddOptions, add)
        product = self.tensor(f"{name}/times_x", shape)
        self.op(tfl.BuiltinOperator.MUL, [source, shifted], [product], tfl.BuiltinOptions.MulOptions, tfl.MulOptionsT())
        self.op(tfl.BuiltinOperator.MUL, [product, self.const(f"{name}/one_sixth", np.array([1.0 / 6.0], np.float32))],
                [out], tfl.BuiltinOptions.MulOptions, tfl.MulOptionsT())

    def split_depthwise(self, node: Conv, out_name: str) -> None:
        """A depthwise conv of more than ``MAX_DEPTHWISE_TAPS`` taps as a sum of row bands of the kernel.

        XNNPACK's depthwise kernels cover up to 25 taps in one pass; above that, LiteRT 2.3's XNNPACK runs
        them far slower than even the builtin kernels (measured here, one 10×10×144 op: k5 0.017 ms, k7
        0.38 ms under XNNPACK vs 0.069 ms builtin). So the k×k kernel is cut into bands of rows of at most
        25 taps (k7: rows 0–2, 3–5, 6), each a VALID depthwise conv over its slice of the padded input, and
        the bands are added. The bias rides on the first band; the activation follows the sum. Exact up to
        float summation order.

        First the kernel is trimmed to the taps that reach a real pixel for some output (on maps smaller
        than the kernel the rest only ever multiply padding): exact, cheaper, and it keeps the explicit
        padding below the map size, which XNNPACK's int8 PAD needs (a full-integer k7 model on a 3×3 map
        failed to load with the untrimmed padding)."""
        n, h, w, c = self.shapes[node.input]
        k, s, p = node.weight.shape[-1], node.stride, node.pad
        out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        (top, bottom), (left, right) = _reached(h, out_h, k, s, p), _reached(w, out_w, k, s, p)
        kernel = node.weight[:, 0].transpose(1, 2, 0)[top:bottom + 1, left:right + 1]  # [kh, kw, C]
        kh, kw = kernel.shape[:2]
        before_h, before_w = p - top, p - left
        after_h = max((out_h - 1) * s + kh - h - before_h, 0)
        after_w = max((out_w - 1) * s + kw - w - before_w, 0)
        source, padded_shape = self.index[node.input], (n, h, w, c)
        if before_h or before_w or after_h or after_w:
            padded_shape = (n, h + before_h + after_h, w + before_w + after_w, c)
            pads = self.const(f"{node.output}/paddings",
                              np.array([[0, 0], [before_h, after_h], [before_w, after_w], [0, 0]], np.int32))
            padded = self.tensor(f"{node.output}/padded", padded_shape)
            self.op(tfl.BuiltinOperator.PAD, [source, pads], [padded], tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT())
            source = padded
        rows = max(1, MAX_DEPTHWISE_TAPS // kw)
        shape = (n, out_h, out_w, c)
        width = (out_w - 1) * s + kw
        bands = []
        for first in range(0, kh, rows):
            band = kernel[first:first + rows]
            height = (out_h - 1) * s + len(band)
            name = f"{node.output}/rows{first}"
            band_input = source
            if (first, height, width) != (0, padded_shape[1], padded_shape[2]):
                band_input = self.tensor(f"{name}/input", (n, height, width, c))
                self.op(tfl.BuiltinOperator.SLICE,
                        [source, self.const(f"{name}/begin", np.array([0, first, 0, 0], np.int32)),
                         self.const(f"{name}/size", np.array([n, height, width, c], np.int32))],
                        [band_input], tfl.BuiltinOptions.SliceOptions, tfl.SliceOptionsT())
            options = tfl.DepthwiseConv2DOptionsT()
            options.depthMultiplier, options.padding, options.strideH, options.strideW = 1, tfl.Padding.VALID, s, s
            options.dilationHFactor = options.dilationWFactor = 1
            alone = kh <= rows  # one band: the conv itself carries the activation (relu fused)
            options.fusedActivationFunction = (tfl.ActivationFunctionType.RELU if alone and node.act == "relu"
                                               else tfl.ActivationFunctionType.NONE)
            bias = node.bias.astype(np.float32) if first == 0 else np.zeros(c, np.float32)
            result = self.tensor(out_name if alone and node.act != "h_swish" else name, shape)
            self.op(tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
                    [band_input, self.const(f"{name}/weights", np.ascontiguousarray(band[None], dtype=np.float32)),
                     self.const(f"{name}/bias", bias)],
                    [result], tfl.BuiltinOptions.DepthwiseConv2DOptions, options)
            bands.append(result)
        if node.act not in (None, "relu", "h_swish"):
            raise ValueError(f"{node.output}: activation {node.act!r} has no TFLite lowering for a split depthwise conv")
        total = bands[0]
        for position, band in enumerate(bands[1:], 1):
            last = position == len(bands) - 1
            options = tfl.AddOptionsT()
            options.fusedActivationFunction = (tfl.ActivationFunctionType.RELU if last and node.act == "relu"
                                               else tfl.ActivationFunctionType.NONE)
            target = (self.tensor(out_name, shape) if last and node.act != "h_swish"
                      else self.tensor(f"{node.output}/sum{position}", shape))
            self.op(tfl.BuiltinOperator.ADD, [total, band], [target], tfl.BuiltinOptions.AddOptions, options)
            total = target
        if node.act == "h_swish":
            self.hard_swish(total, self.tensor(out_name, shape), f"{node.output}/h_swish", shape)

    def mean(self, node: GlobalAvgPool, out_name: str) -> None:
        n, _, _, c = self.shapes[node.input]
        axes = self.const(f"{node.output}/axes", np.array([1, 2], np.int32))
        out = self.tensor(out_name, (n, 1, 1, c))
        options = tfl.ReducerOptionsT()
        options.keepDims = True
        self.op(tfl.BuiltinOperator.MEAN, [self.index[node.input], axes], [out], tfl.BuiltinOptions.ReducerOptions,
                options)

    def binary(self, node: Add | Mul, out_name: str) -> None:
        a, b = self.shapes[node.a], self.shapes[node.b]
        shape = tuple(np.broadcast_shapes(a, b))
        if isinstance(node, Mul):
            if b[1:3] != (1, 1) or b[3] != a[3]:
                raise ValueError(f"{node.output}: Mul broadcasts a [N, 1, 1, C] gate, got {a} * {b}")
            code, options_type, options = tfl.BuiltinOperator.MUL, tfl.BuiltinOptions.MulOptions, tfl.MulOptionsT()
        else:
            if a != b:
                raise ValueError(f"{node.output}: Add needs equal shapes, got {a} + {b}")
            code, options_type, options = tfl.BuiltinOperator.ADD, tfl.BuiltinOptions.AddOptions, tfl.AddOptionsT()
        out = self.tensor(out_name, shape)
        self.op(code, [self.index[node.a], self.index[node.b]], [out], options_type, options)

    def linear(self, node: Linear, out_name: str) -> None:
        n, h, w, c = self.shapes[node.input]
        out_features, in_features = node.weight.shape
        if (h, w) != (1, 1) or c != in_features:
            raise ValueError(f"{node.output}: Linear needs a [N, 1, 1, {in_features}] input, got NHWC {(n, h, w, c)}")
        weights = self.const(f"{node.output}/weights", np.ascontiguousarray(node.weight, dtype=np.float32))
        biases = self.const(f"{node.output}/bias", np.ascontiguousarray(node.bias, dtype=np.float32))
        out = self.tensor(out_name, (n, out_features))
        options = tfl.FullyConnectedOptionsT()
        options.keepNumDims = False
        self.op(tfl.BuiltinOperator.FULLY_CONNECTED, [self.index[node.input], weights, biases], [out],
                tfl.BuiltinOptions.FullyConnectedOptions, options)


def graph_to_tflite(graph: Graph, metadata: Mapping[str, str] | None = None,
                    decompose_hard_swish: bool = False) -> bytes:
    """The TFLite flatbuffer (schema v3, fp32, NHWC) computing ``graph``; ``metadata``: name → UTF-8 text.
    ``decompose_hard_swish``: h-swish as ADD/MUL ops (``_Writer.hard_swish``), for files quantised to full
    integer."""
    if not graph.nodes:
        raise ValueError("graph has no nodes: a TFLite model needs at least one operator")
    n, c, h, w = graph.input_shape
    writer = _Writer(decompose_hard_swish)
    writer.tensor("input", (n, h, w, c))
    writer.index[graph.input] = writer.index["input"]
    writer.shapes[graph.input] = writer.shapes["input"]
    for position, node in enumerate(graph.nodes):
        out_name = "output" if node.output == graph.output else node.output
        if node.output == graph.output and position != len(graph.nodes) - 1:
            raise ValueError(f"graph output {graph.output!r} is not produced by the last node")
        if isinstance(node, Conv):
            writer.conv(node, out_name)
        elif isinstance(node, GlobalAvgPool):
            writer.mean(node, out_name)
        elif isinstance(node, (Add, Mul)):
            writer.binary(node, out_name)
        elif isinstance(node, Linear):
            writer.linear(node, out_name)
        else:
            raise TypeError(f"node {type(node).__name__} has no TFLite lowering")
        writer.index[node.output] = writer.index[out_name]
        writer.shapes[node.output] = writer.shapes[out_name]
    if "output" not in writer.index:
        raise ValueError(f"graph output {graph.output!r} is produced by no node")

    subgraph = tfl.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors = writer.tensors
    subgraph.inputs = [writer.index["input"]]
    subgraph.outputs = [writer.index["output"]]
    subgraph.operators = writer.operators

    signature = tfl.SignatureDefT()
    signature.signatureKey = SIGNATURE_KEY
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = [tfl.TensorMapT()], [tfl.TensorMapT()]
    signature.inputs[0].name, signature.inputs[0].tensorIndex = "input", writer.index["input"]
    signature.outputs[0].name, signature.outputs[0].tensorIndex = "output", writer.index["output"]

    model = tfl.ModelT()
    model.version = SCHEMA_VERSION
    model.description = "hwnas"
    model.operatorCodes = writer.opcodes
    model.subgraphs = [subgraph]
    model.signatureDefs = [signature]
    model.buffers = writer.buffers
    model.metadata = []
    _add_metadata(model, metadata or {})
    return _pack(model)


def _add_metadata(model: tfl.ModelT, metadata: Mapping[str, str]) -> None:
    """Append one buffer + metadata entry per item (an existing entry of the same name is replaced)."""
    for name, text in metadata.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError(f"metadata entries are str -> str, got {name!r}: {type(text).__name__}")
    def name_of(entry: tfl.MetadataT) -> str:  # unpacked flatbuffers hold bytes, new entries str
        return entry.name.decode("utf-8") if isinstance(entry.name, bytes) else entry.name

    model.metadata = [m for m in (model.metadata or []) if name_of(m) not in metadata]
    for name, text in metadata.items():
        model.buffers.append(_AlignedBuffer(text.encode("utf-8")))
        entry = tfl.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)


def _pack(model: tfl.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def with_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """``data`` (a TFLite flatbuffer, e.g. one a quantiser wrote) with these metadata entries set.

    Constant buffers stored after the flatbuffer (offset + size, as ai-edge-quantizer writes them) are moved
    inside it, every one aligned to 16 bytes; the result must stay under flatbuffers' 2 GB limit.
    """
    if len(data) < 8 or not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    buffers = []
    for index, buffer in enumerate(model.buffers or []):
        if buffer.offset > 1:  # 0: inline; 1: the converter's placeholder for "no data"
            if buffer.offset + buffer.size > len(data):
                raise ValueError(f"buffer {index} points past the end of the file ({buffer.offset}+{buffer.size})")
            raw = bytes(data[buffer.offset:buffer.offset + buffer.size])
        else:
            raw = b"" if buffer.data is None else np.asarray(buffer.data, dtype=np.uint8).tobytes()
        buffers.append(_AlignedBuffer(raw) if raw else tfl.BufferT())
    model.buffers = buffers
    _add_metadata(model, metadata)
    return _pack(model)


def module_to_tflite(module: nn.Module, input_shape_nchw: tuple[int, int, int, int],
                     metadata: Mapping[str, str] | None = None, decompose_hard_swish: bool = False) -> bytes:
    """A static op or ``StaticSubnet`` (eval mode: BN folded) as TFLite bytes for this NCHW input shape."""
    return graph_to_tflite(lower(module, input_shape_nchw), metadata, decompose_hard_swish)


def read_tflite_metadata(data: bytes) -> dict[str, str]:
    """The model's named metadata entries, decoded as UTF-8 (invalid bytes replaced, trailing NULs dropped)."""
    if len(data) < 8 or not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    model = tfl.Model.GetRootAs(data, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        raw = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
        if not raw and buffer.Size():  # stored outside the flatbuffer (models > 2 GB)
            raw = bytes(data[buffer.Offset():buffer.Offset() + buffer.Size()])
        entries[entry.Name().decode("utf-8")] = raw.decode("utf-8", errors="replace").rstrip("\0")
    return entries
