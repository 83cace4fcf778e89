"""The ONNX writer: files onnxruntime runs exactly as the PyTorch modules they were written from."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwnas import get_space
from hwnas.formats import lower
from hwnas.formats.ir import Graph
from hwnas.formats.onnx_writer import OPSET, graph_to_onnx, module_to_onnx
from hwnas.nn import OFAMobileNetV3
from hwnas.nn.static_blocks import create_op

from conftest import condition_bn_

TOL = 1e-4
TINY = get_space("tiny-mbv3")
R = 32


def _tiny_signatures():
    """One signature per op kind and block variant of tiny-mbv3 (ids say which)."""
    (stem, first), head = TINY.fixed_signatures(R)
    sigs = {"stem": stem, "first_block": first}
    # slot -> stage: 0-3 relu no-SE (slot 0 stride 2), 4-7 relu SE (slot 4 stride 2),
    # 8 h-swish no-SE stride 1 not residual, 12 h-swish SE stride 2, 13 h-swish SE residual
    for slot, k, e in ((0, 3, 3), (1, 5, 4), (4, 7, 6), (5, 3, 4), (8, 5, 3), (12, 3, 6), (13, 7, 4)):
        sig = TINY.block_signature(slot, R, k, e)
        label = f"block{slot}-{sig.act}-se{int(sig.se)}-s{sig.stride}-res{int(sig.residual)}-k{k}e{e}"
        sigs[label] = sig
    sigs.update({sig.kind: sig for sig in head})
    return sigs


SIGNATURES = _tiny_signatures()


@torch.no_grad()
def _op(signature, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    op = create_op(signature)
    condition_bn_(op, (1, signature.in_c, signature.in_hw, signature.in_hw), torch.Generator().manual_seed(seed))
    return op.eval()


def _session(payload: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the CI box is shared: no thread pool spinning against other jobs
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def _check_against_torch(module: torch.nn.Module, shape: tuple[int, int, int, int]) -> None:
    """Batch 2 through the dynamic-batch file and batch 1 through the static one match PyTorch."""
    rng = np.random.default_rng(0)
    for batch, dynamic in ((2, True), (1, False)):
        payload = module_to_onnx(module, (1, *shape[1:]), dynamic_batch=dynamic)
        onnx.checker.check_model(onnx.load_from_string(payload))
        x = rng.standard_normal((batch, *shape[1:])).astype(np.float32)
        got = _session(payload).run(None, {"input": x})[0]
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= TOL, f"batch {batch}: max abs diff {np.abs(got - want).max():.3g}"
        if batch == 2:  # the rows really are different samples
            assert np.abs(want[0] - want[1]).max() > 10 * TOL


def test_signatures_cover_every_op_variant():
    sigs = list(SIGNATURES.values())
    assert {s.kind for s in sigs} == {"Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits"}
    blocks = [s for s in sigs if s.kind == "expanded_conv"]
    assert {s.se for s in blocks} == {True, False}
    assert {s.act for s in blocks} == {"relu", "h_swish"}
    assert {s.stride for s in blocks} == {1, 2}
    assert {s.residual for s in blocks} == {True, False}
    assert {s.kernel for s in blocks} == {3, 5, 7}
    assert any(not s.expands for s in blocks) and any(s.expands for s in blocks)


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_op_matches_torch(name):
    sig = SIGNATURES[name]
    op = _op(sig)
    if sig.kind == "Logits":  # logits of a realistic size, so that 1e-4 is a strict bound
        op.linear.weight.data.mul_(10)
    _check_against_torch(op, (1, sig.in_c, sig.in_hw, sig.in_hw))


@pytest.fixture(scope="module")
def tiny_supernet():
    torch.manual_seed(0)
    return OFAMobileNetV3(TINY)


def _subnet(net, arch, r, seed):
    subnet = net.extract(arch)
    condition_bn_(subnet, (1, 3, r, r), torch.Generator().manual_seed(seed))
    subnet[-1].linear.weight.data.mul_(10)
    return subnet.eval()


@pytest.mark.parametrize("seed, r", [(1, 32), (2, 40)])
def test_tiny_subnet_matches_torch(tiny_supernet, seed, r):
    arch = dataclasses.replace(TINY.sample(seed), r=r)
    _check_against_torch(_subnet(tiny_supernet, arch, r, seed), (1, 3, r, r))


def test_ofa_w10_subnet_matches_torch():
    space = get_space("ofa-mbv3-w1.0", resolutions=(64, 96))
    torch.manual_seed(0)
    net = OFAMobileNetV3(space)
    arch = space.sample(3)
    _check_against_torch(_subnet(net, arch, arch.r, 3), (1, 3, arch.r, arch.r))


def test_model_structure_and_metadata():
    sig = SIGNATURES["block13-h_swish-se1-s1-res1-k7e4"]
    op = _op(sig)
    metadata = {"hwnas.signature": sig.key, "note": "ünïcode ok"}
    shape = (1, sig.in_c, sig.in_hw, sig.in_hw)
    model = onnx.load_from_string(module_to_onnx(op, shape, metadata=metadata))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET == 17
    assert {p.key: p.value for p in model.metadata_props} == metadata
    assert _session(model.SerializeToString()).get_modelmeta().custom_metadata_map == metadata

    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(shape[1:])
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out_dims = out.type.tensor_type.shape.dim
    assert out_dims[0].dim_param == "batch" and [d.dim_value for d in out_dims[1:]] == [sig.out_c, sig.out_hw, sig.out_hw]

    types = [n.op_type for n in model.graph.node]
    assert types.count("Conv") == 5 and types.count("HardSwish") == 2 and types.count("Relu") == 1
    assert types.count("HardSigmoid") == 1 and {"GlobalAveragePool", "Mul", "Add"} <= set(types)
    assert "BatchNormalization" not in types  # folded
    hsig = next(n for n in model.graph.node if n.op_type == "HardSigmoid")
    attrs = {a.name: a.f for a in hsig.attribute}
    assert attrs["alpha"] == pytest.approx(1 / 6) and attrs["beta"] == pytest.approx(0.5)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names)
    for part in ("expand", "depthwise", "se_reduce", "se_expand", "project", "residual"):
        assert any(n.startswith(part) for n in names), part
    conv = next(n for n in model.graph.node if n.name.startswith("depthwise") and n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["group"] == sig.mid_c and attrs["pads"] == [3, 3, 3, 3] and attrs["kernel_shape"] == [7, 7]


def test_static_batch_and_classifier():
    sig = SIGNATURES["Logits"]
    model = onnx.load_from_string(module_to_onnx(_op(sig), (1, sig.in_c, 1, 1), dynamic_batch=False))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, sig.in_c, 1, 1]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, sig.out_c]
    assert [n.op_type for n in model.graph.node] == ["Flatten", "Gemm"]
    gemm = model.graph.node[1]
    assert {a.name: a.i for a in gemm.attribute}["transB"] == 1
    weight = next(t for t in model.graph.initializer if t.name == gemm.input[1])
    assert list(weight.dims) == [sig.out_c, sig.in_c]


def test_graph_to_onnx_matches_lowered_graph():
    sig = SIGNATURES["stem"]
    graph = lower(_op(sig), (1, 3, R, R))
    assert onnx.load_from_string(graph_to_onnx(graph)).graph.node[0].name == graph.nodes[0].output
    with pytest.raises(ValueError, match="no nodes"):
        graph_to_onnx(Graph(input="input", input_shape=(1, 3, R, R)))
