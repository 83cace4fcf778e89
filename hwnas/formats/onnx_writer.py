"""ONNX writer: a lowered graph (``hwnas.formats.ir``) → ONNX ModelProto bytes, built with ``onnx.helper``.

No exporter is involved, so the profiled op files and the deployed subnet files are written by the same
few lines and contain exactly the IR's nodes: Conv (BN folded, explicit symmetric pads) followed by its
activation node, GlobalAveragePool, Mul, Add, and Flatten + Gemm for the classifier.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .ir import Add, Conv, GlobalAvgPool, Graph, Linear, Mul, lower

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17: loadable by runtimes from onnxruntime 1.11 on
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"


def _activation(act: str, x: str, y: str, name: str) -> onnx.NodeProto:
    if act == "relu":
        return helper.make_node("Relu", [x], [y], name=f"{name}/relu")
    if act == "h_swish":
        return helper.make_node("HardSwish", [x], [y], name=f"{name}/h_swish")
    if act == "h_sigmoid":  # relu6(x + 3) / 6, as torch's hardsigmoid (ONNX's default alpha is 0.2)
        return helper.make_node("HardSigmoid", [x], [y], name=f"{name}/h_sigmoid", alpha=1.0 / 6.0, beta=0.5)
    raise ValueError(f"activation {act!r} has no ONNX lowering; supported: relu, h_swish, h_sigmoid")


def _conv_out(size: int, node: Conv) -> int:
    kernel = node.weight.shape[-1]
    return (size + 2 * node.pad - kernel) // node.stride + 1


def graph_to_onnx(graph: Graph, metadata: dict[str, str] | None = None, dynamic_batch: bool = True) -> bytes:
    """Serialised ONNX model (opset ``OPSET``) of ``graph``: NCHW float32 ``input`` → ``output``.

    ``dynamic_batch`` makes the batch dimension the symbol ``batch``; otherwise it is the graph's batch.
    ``metadata`` becomes the model's ``metadata_props``. The model passes ``onnx.checker``.
    """
    if not graph.nodes:
        raise ValueError("graph has no nodes: nothing to write")
    n, c, h, w = graph.input_shape
    batch: int | str = BATCH_DIM if dynamic_batch else int(n)

    def tensor(name: str) -> str:
        return OUTPUT_NAME if name == graph.output else INPUT_NAME if name == graph.input else name

    shapes: dict[str, list[int]] = {graph.input: [c, h, w]}  # per-sample shapes, to declare the output
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def weight(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    for node in graph.nodes:
        if isinstance(node, Conv):
            name = node.output
            out_c, _, kernel, _ = node.weight.shape
            conv_out = tensor(name) if node.act is None else f"{name}/conv"
            nodes.append(helper.make_node(
                "Conv", [tensor(node.input), weight(f"{name}.weight", node.weight), weight(f"{name}.bias", node.bias)],
                [conv_out], name=name, kernel_shape=[kernel, kernel], strides=[node.stride, node.stride],
                pads=[node.pad] * 4, group=node.groups, dilations=[1, 1]))
            if node.act is not None:
                nodes.append(_activation(node.act, conv_out, tensor(name), name))
            _, in_h, in_w = shapes[node.input]
            shapes[name] = [out_c, _conv_out(in_h, node), _conv_out(in_w, node)]
        elif isinstance(node, GlobalAvgPool):
            nodes.append(helper.make_node("GlobalAveragePool", [tensor(node.input)], [tensor(node.output)],
                                          name=node.output))
            shapes[node.output] = [shapes[node.input][0], 1, 1]
        elif isinstance(node, (Mul, Add)):
            op_type = "Mul" if isinstance(node, Mul) else "Add"
            nodes.append(helper.make_node(op_type, [tensor(node.a), tensor(node.b)], [tensor(node.output)],
                                          name=node.output))
            shapes[node.output] = shapes[node.a]
        elif isinstance(node, Linear):
            flat = f"{node.output}/flatten"
            nodes.append(helper.make_node("Flatten", [tensor(node.input)], [flat], name=flat, axis=1))
            nodes.append(helper.make_node(
                "Gemm", [flat, weight(f"{node.output}.weight", node.weight), weight(f"{node.output}.bias", node.bias)],
                [tensor(node.output)], name=node.output, transB=1))
            shapes[node.output] = [int(node.weight.shape[0])]
        else:
            raise TypeError(f"{type(node).__name__} has no ONNX lowering")

    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, c, h, w])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, *shapes[graph.output]])]
    onnx_graph = helper.make_graph(nodes, "hwnas", inputs, outputs, initializer=initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hwnas", ir_version=IR_VERSION)
    if metadata:
        helper.set_model_props(model, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def module_to_onnx(module: nn.Module, input_shape: tuple[int, int, int, int],
                   metadata: dict[str, str] | None = None, dynamic_batch: bool = True) -> bytes:
    """ONNX bytes of a static op or ``StaticSubnet`` (eval-mode statistics) for an NCHW ``input_shape``."""
    return graph_to_onnx(lower(module, input_shape), metadata=metadata, dynamic_batch=dynamic_batch)
